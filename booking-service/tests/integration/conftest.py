"""Fixtures of booking-service's integration tests.

One app per session on a real, migrated database and this run's own RabbitMQ
vhost, with its relay and consumer running; scheduling-service is replaced by a
stand-in that speaks its internal HTTP API. Tokens come from ``TokenMinter``.
"""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pika
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text

from booking.config import Settings
from booking.main import create_app
from booking.models import Appointment
from chassis.messaging import EXCHANGE, Envelope, declare_exchanges
from chassis.testkit import TokenMinter

from .scheduling_stand_in import SchedulingStandIn, ServerThread

CONTRACTS_DIR = Path(__file__).resolve().parents[3] / "contracts"
_ids = itertools.count(int(time.time()) % 100_000 * 1000)


@pytest.fixture(scope="session")
def minter() -> TokenMinter:
    return TokenMinter()


@pytest.fixture(scope="session")
def scheduling() -> Iterator[SchedulingStandIn]:
    stand_in = SchedulingStandIn()
    with ServerThread(stand_in.app()) as server:
        stand_in.url = server.url
        yield stand_in


def make_settings(database_url: str, amqp_url: str, **overrides: Any) -> Settings:
    return Settings(
        database_url=database_url, amqp_url=amqp_url, log_format="text", log_level="WARNING", **overrides
    )


@pytest.fixture(scope="session")
def app(database_url: str, amqp_url: str, scheduling: SchedulingStandIn, minter: TokenMinter) -> FastAPI:
    settings = make_settings(
        database_url, amqp_url, scheduling_url=scheduling.url, scheduling_timeout_seconds=1.0
    )
    app = create_app(settings)
    minter.trust(app, "booking")
    return app


@pytest.fixture(scope="session")
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as client:
        assert app.state.event_consumer.wait_ready(30), "the consumer did not subscribe"
        assert app.state.outbox_relay.wait_ready(30), "the relay did not connect"
        yield client


@pytest.fixture(autouse=True)
def clean_state(request: pytest.FixtureRequest) -> None:
    if "app" not in request.fixturenames:
        return
    app: FastAPI = request.getfixturevalue("app")
    with app.state.db.transaction() as session:
        tables = "appointments, users, waitlist_offers, waitlist_entries, waitlist_openings, calendar_feeds"
        session.execute(text(f"TRUNCATE {tables}"))
    request.getfixturevalue("scheduling").reset()


@pytest.fixture
def new_id() -> Callable[[], int]:
    """Fresh user/timeslot ids, never reused within a run (events of earlier tests cannot collide)."""
    return lambda: next(_ids)


@pytest.fixture(scope="session")
def from_scheduling(minter: TokenMinter) -> dict[str, str]:
    """The Authorization header of scheduling's reservation lookups (its service token)."""
    return {"Authorization": minter.service_credentials("scheduling").authorization("booking")}


@pytest.fixture
def as_user(minter: TokenMinter) -> Callable[[int, str], dict[str, str]]:
    return lambda user_id, role: minter.headers(user_id=user_id, role=role)


@pytest.fixture
def seed(app: FastAPI, new_id: Callable[[], int]) -> Callable[..., Appointment]:
    """Store an appointment directly, as a booking that already went through would have."""

    def make(
        *,
        patient_id: int,
        doctor_id: int,
        starts_in: timedelta = timedelta(days=1),
        start_time: datetime | None = None,
        status: str = "pending",
        timeslot_id: int | None = None,
        reason: str = "",
    ) -> Appointment:
        start = start_time or datetime.now(UTC).replace(microsecond=0) + starts_in
        appointment = Appointment(
            reservation_id=uuid.uuid4(),
            timeslot_id=timeslot_id or new_id(),
            doctor_id=doctor_id,
            patient_id=patient_id,
            start_time=start,
            end_time=start + timedelta(minutes=30),
            status=status,
            reason=reason,
            cancelled_by="admin" if status == "cancelled" else None,
        )
        with app.state.db.transaction() as session:
            session.add(appointment)
        return appointment

    return make


class Broker:
    """This run's vhost as a test sees it: publish identity events, watch booking's events."""

    def __init__(self, amqp_url: str) -> None:
        self.connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
        self.channel = self.connection.channel()
        declare_exchanges(self.channel)
        self.queue = self.channel.queue_declare("", exclusive=True).method.queue
        self.channel.queue_bind(self.queue, EXCHANGE, routing_key="booking.appointment.*")
        self.channel.queue_bind(self.queue, EXCHANGE, routing_key="booking.waitlist.*")
        self.seen: list[dict[str, Any]] = []

    def publish(self, event_type: str, data: dict[str, Any], *, envelope: Envelope | None = None) -> Envelope:
        envelope = envelope or Envelope.new(event_type, data, producer="identity")
        self.channel.basic_publish(
            EXCHANGE,
            event_type,
            json.dumps(envelope.to_json()).encode(),
            pika.BasicProperties(
                message_id=str(envelope.event_id),
                type=event_type,
                content_type="application/json",
                delivery_mode=pika.DeliveryMode.Persistent,
            ),
        )
        return envelope

    def published(self, event_type: str, **data: Any) -> list[dict[str, Any]]:
        """Every event of ``event_type`` booking published so far whose data contains ``data``."""
        while True:
            method, _, body = self.channel.basic_get(self.queue, auto_ack=True)
            if method is None:
                break
            self.seen.append(json.loads(body))
        return [
            e
            for e in self.seen
            if e["event_type"] == event_type and all(e["data"].get(k) == v for k, v in data.items())
        ]

    def close(self) -> None:
        self.connection.close()


@pytest.fixture
def broker(amqp_url: str, client: TestClient) -> Iterator[Broker]:
    broker = Broker(amqp_url)
    yield broker
    broker.close()
