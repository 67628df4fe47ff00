"""doctor-service test fixtures: a migrated database of this run, clients, tokens, profile rows."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pika
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from chassis.db import Database
from chassis.messaging import EXCHANGE, Envelope, OutboxEvent, declare_exchanges
from chassis.messaging.contracts import validate_envelope
from chassis.migrations import upgrade
from chassis.testkit import TokenMinter
from doctor.config import Settings
from doctor.events import PROFILE_UPDATED
from doctor.main import create_app
from doctor.models import Doctor

ALEMBIC_INI = Path(__file__).resolve().parents[1] / "alembic.ini"
CONTRACTS_DIR = Path(__file__).resolve().parents[2] / "contracts"


@pytest.fixture(scope="session")
def database_url(make_database) -> str:
    url = make_database("doctor")
    upgrade(ALEMBIC_INI, url)
    return url


@pytest.fixture(scope="session")
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url, pool_size=2, max_overflow=2)
    yield database
    database.dispose()


@pytest.fixture(scope="session")
def minter() -> TokenMinter:
    return TokenMinter()


@pytest.fixture(scope="session")
def contracts_dir() -> Path:
    return CONTRACTS_DIR


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


class As:
    """Authorization headers of one caller: ``as_.patient``, ``as_.admin``, ``as_.doctor(7)``."""

    def __init__(self, minter: TokenMinter) -> None:
        self.minter = minter
        self.patient = minter.headers(user_id=900_001, role="patient")
        self.admin = minter.headers(user_id=900_002, role="admin")

    def doctor(self, user_id: int) -> dict[str, str]:
        return self.minter.headers(user_id=user_id, role="doctor")

    def role(self, role: str, user_id: int = 900_003) -> dict[str, str]:
        return self.minter.headers(user_id=user_id, role=role)


@pytest.fixture(scope="session")
def as_(minter: TokenMinter) -> As:
    return As(minter)


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


def eventually(check: Callable[[], Any], *, timeout: float = 15.0, interval: float = 0.05) -> Any:
    """Call ``check`` until it stops failing an assertion and returns; fail once ``timeout`` has passed."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() >= deadline:
                raise
        time.sleep(interval)


@pytest.fixture(scope="session")
def wait_until() -> Callable[..., Any]:
    return eventually


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
    """Publishes identity's user events to ``clinic.events``, as identity's relay would.

    Every event is first checked against identity's contracts: the consumer is fed
    only what the contracts allow.
    """

    def __init__(self, amqp_url: str, contracts_dir: Path) -> None:
        self.amqp_url = amqp_url
        self.contracts_dir = contracts_dir

    def publish(self, envelope: dict[str, Any]) -> dict[str, Any]:
        validate_envelope(envelope, self.contracts_dir)
        connection = pika.BlockingConnection(pika.URLParameters(self.amqp_url))
        try:
            channel = connection.channel()
            channel.confirm_delivery()
            declare_exchanges(channel)
            channel.basic_publish(
                EXCHANGE,
                envelope["event_type"],
                json.dumps(envelope).encode(),
                pika.BasicProperties(
                    content_type="application/json",
                    delivery_mode=pika.DeliveryMode.Persistent,
                    message_id=envelope["event_id"],
                    type=envelope["event_type"],
                ),
                mandatory=True,
            )
        finally:
            connection.close()
        return envelope

    @staticmethod
    def envelope(event_type: str, data: dict[str, Any]) -> dict[str, Any]:
        return Envelope.new(event_type, data, producer="identity").to_json()

    def registered(
        self, user_id: int, full_name: str, *, role: str = "doctor", revision: int = 1, is_active: bool = True
    ) -> dict[str, Any]:
        data = {
            "user_id": user_id,
            "full_name": full_name,
            "phone": None,
            "role": role,
            "is_active": is_active,
            "date_joined": "2026-11-27T08:00:00Z",
            "revision": revision,
        }
        return self.publish(self.envelope("identity.user.registered", data))

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
    ) -> dict[str, Any]:
        data = {
            "user_id": user_id,
            "full_name": full_name,
            "phone": phone,
            "role": role,
            "is_active": is_active,
            "revision": revision,
            "changed": list(changed),
        }
        return self.publish(self.envelope("identity.user.updated", data))

    def deactivated(
        self, user_id: int, *, revision: int, role: str = "doctor", full_name: str | None = None
    ) -> dict[str, Any]:
        data = {
            "user_id": user_id,
            **({"full_name": full_name} if full_name is not None else {}),
            "role": role,
            "revision": revision,
            "deactivated_at": "2026-11-27T09:00:00Z",
        }
        return self.publish(self.envelope("identity.user.deactivated", data))


@pytest.fixture(scope="session")
def identity(amqp_url: str, contracts_dir: Path) -> IdentityEvents:
    return IdentityEvents(amqp_url, contracts_dir)


@pytest.fixture
def published_for(db: Database) -> Callable[[int], list[dict[str, Any]]]:
    """The doctor.profile.updated envelopes in the outbox for one doctor, oldest first."""

    def published(doctor_id: int) -> list[dict[str, Any]]:
        with db.sessions() as session:
            rows = session.scalars(
                select(OutboxEvent)
                .where(OutboxEvent.event_type == "doctor.profile.updated")
                .where(OutboxEvent.payload["data"]["doctor_id"].as_integer() == doctor_id)
                .order_by(OutboxEvent.created_at)
            )
            return [row.payload for row in rows]

    return published


class ProfileEventsQueue:
    """A queue of this test's own, bound to doctor.profile.updated, as another service's would be."""

    def __init__(self, amqp_url: str, name: str) -> None:
        self.connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
        self.channel = self.connection.channel()
        declare_exchanges(self.channel)
        self.name = name
        self.channel.queue_declare(name, exclusive=True)
        self.channel.queue_bind(name, EXCHANGE, routing_key=PROFILE_UPDATED)

    def next_message(self, wait_until) -> tuple[pika.BasicProperties, dict]:
        def received() -> tuple[pika.BasicProperties, dict]:
            method, properties, body = self.channel.basic_get(self.name, auto_ack=True)
            assert method is not None, "no doctor.profile.updated yet"
            return properties, json.loads(body)

        return wait_until(received)

    def close(self) -> None:
        self.connection.close()


@pytest.fixture
def profile_events(amqp_url: str, request: pytest.FixtureRequest) -> Iterator[ProfileEventsQueue]:
    queue = ProfileEventsQueue(amqp_url, f"test.{request.node.name}"[:200])
    yield queue
    queue.close()
