"""Fixtures of booking-service's integration tests.

One app per session on a real, migrated database and this run's own RabbitMQ
vhost, with its relay and consumer running; scheduling-service is replaced by a
stand-in that speaks its internal HTTP API. Tokens come from ``TokenMinter``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text

from booking.config import Settings
from booking.main import create_app
from booking.models import Appointment
from chassis.testkit import Broker, Callers, ServerThread, TokenMinter

from .scheduling_stand_in import SchedulingStandIn


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
        tables = (
            "appointments, appointment_history, users, doctor_policies, idempotency_keys,"
            " waitlist_offers, waitlist_entries, waitlist_openings, calendar_feeds, abandoned_reservations"
        )
        session.execute(text(f"TRUNCATE {tables}"))
    request.getfixturevalue("scheduling").reset()


def count_appointments(app: FastAPI) -> int:
    with app.state.db.transaction() as session:
        return session.scalar(select(func.count()).select_from(Appointment))


@pytest.fixture(scope="session")
def from_scheduling(callers: Callers) -> dict[str, str]:
    """The Authorization header of scheduling's reservation lookups (its service token)."""
    return callers.service("scheduling", "booking")


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
        cancellation_notice_minutes: int = 0,
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
            cancellation_notice_minutes=cancellation_notice_minutes,
        )
        with app.state.db.transaction() as session:
            session.add(appointment)
        return appointment

    return make


@pytest.fixture
def broker(broker: Broker, client: TestClient) -> Broker:
    """The kit's broker, watching what booking publishes (each event checked against its contract)."""
    return broker.watch("booking.appointment.*", "booking.waitlist.*")
