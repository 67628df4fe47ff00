"""doctor-service test fixtures on the chassis test kit (``chassis.testkit``): the migrated
database, apps that trust the run's ``minter``, profile rows, identity's events published
through the kit's ``broker`` (checked against their contracts) and what doctor publishes."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pika
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from chassis.db import Database
from chassis.messaging import Envelope, OutboxEvent
from chassis.messaging.contracts import validate_envelope
from chassis.testkit import Broker, TokenMinter
from doctor.config import Settings
from doctor.events import PROFILE_UPDATED
from doctor.main import create_app
from doctor.models import Doctor

ALEMBIC_INI = Path(__file__).resolve().parents[1] / "alembic.ini"


@pytest.fixture(scope="session")
def database_url(make_migrated_database) -> str:
    return make_migrated_database(ALEMBIC_INI, "doctor")


def empty_tables(db: Database) -> None:
    with db.transaction() as session:
        session.execute(text("TRUNCATE doctors, outbox_events, processed_events"))


@pytest.fixture
def client(database_url: str, db: Database, minter: TokenMinter) -> Iterator[TestClient]:
    """The API on an empty database, without the relay and the consumer."""
    empty_tables(db)
    settings = Settings(database_url=database_url, messaging_enabled=False)
    app = create_app(settings)
    minter.trust(app, "doctor")
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def add_doctor(db: Database) -> Callable[..., Doctor]:
    """Put a profile row in place, as identity's events would have."""

    def add(doctor_id: int, full_name: str, specialty: str = "", **fields: Any) -> Doctor:
        values: dict[str, Any] = {
            "bio": "",
            "years_of_experience": 0,
            "is_active": True,
            "user_revision": 1,
            "revision": 1,
            **fields,
        }
        doctor = Doctor(id=doctor_id, full_name=full_name, specialty=specialty, **values)
        with db.transaction() as session:
            session.add(doctor)
        return doctor

    return add


@pytest.fixture(scope="module")
def live_client(database_url: str, amqp_url: str, minter: TokenMinter) -> Iterator[TestClient]:
    """The API with its outbox relay and its consumer running against this run's vhost."""
    app = create_app(Settings(database_url=database_url, amqp_url=amqp_url))
    minter.trust(app, "doctor")
    with TestClient(app) as test_client:
        assert app.state.event_consumer.wait_ready(30), "the consumer did not subscribe"
        assert app.state.outbox_relay.wait_ready(30), "the outbox relay did not connect"
        yield test_client


class IdentityEvents:
    """Publishes identity's user events, as identity's relay would (the kit's ``broker`` checks
    each against identity's contracts first)."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker

    def publish(self, envelope: Envelope) -> Envelope:
        """``envelope`` once more, as a redelivery would bring it."""
        return self.broker.publish_event(envelope.event_type, envelope=envelope)

    def _publish(self, event_type: str, data: dict[str, Any]) -> Envelope:
        return self.broker.publish_event(event_type, data, producer="identity")

    def registered(
        self, user_id: int, full_name: str, *, role: str = "doctor", revision: int = 1, is_active: bool = True
    ) -> Envelope:
        data = {
            "user_id": user_id,
            "full_name": full_name,
            "phone": None,
            "role": role,
            "is_active": is_active,
            "date_joined": "2026-11-27T08:00:00Z",
            "revision": revision,
        }
        return self._publish("identity.user.registered", data)

    def updated(
        self,
        user_id: int,
        full_name: str,
        *,
        revision: int,
        changed: Sequence[str],
        role: str = "doctor",
        is_active: bool = True,
        phone: str | None = None,
    ) -> Envelope:
        data = {
            "user_id": user_id,
            "full_name": full_name,
            "phone": phone,
            "role": role,
            "is_active": is_active,
            "revision": revision,
            "changed": list(changed),
        }
        return self._publish("identity.user.updated", data)

    def deactivated(
        self, user_id: int, *, revision: int, role: str = "doctor", full_name: str | None = None
    ) -> Envelope:
        data = {
            "user_id": user_id,
            **({"full_name": full_name} if full_name is not None else {}),
            "role": role,
            "revision": revision,
            "deactivated_at": "2026-11-27T09:00:00Z",
        }
        return self._publish("identity.user.deactivated", data)


@pytest.fixture
def identity(broker: Broker) -> IdentityEvents:
    return IdentityEvents(broker)


@pytest.fixture
def published_for(db: Database) -> Callable[[int], list[dict[str, Any]]]:
    """The doctor.profile.updated envelopes in the outbox for one doctor, oldest first."""

    def published(doctor_id: int) -> list[dict[str, Any]]:
        with db.sessions() as session:
            rows = session.scalars(
                select(OutboxEvent)
                .where(OutboxEvent.event_type == PROFILE_UPDATED)
                .where(OutboxEvent.payload["data"]["doctor_id"].as_integer() == doctor_id)
                .order_by(OutboxEvent.created_at)
            )
            return [row.payload for row in rows]

    return published


class ProfileEvents:
    """A queue of the test's own bound to doctor.profile.updated, as another service's would be."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.queue = broker.bind_queue(PROFILE_UPDATED)

    def next_message(self) -> tuple[pika.BasicProperties, dict[str, Any]]:
        """The next event (waiting up to 15 s), checked against its contract."""
        messages = self.broker.get(self.queue, timeout=15)
        assert messages, "no doctor.profile.updated within 15 s"
        envelope = json.loads(messages[0].body)
        validate_envelope(envelope, self.broker.contracts_dir)
        return messages[0].properties, envelope


@pytest.fixture
def profile_events(broker: Broker) -> ProfileEvents:
    return ProfileEvents(broker)
