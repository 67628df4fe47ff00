"""notification-service test fixtures on the chassis test kit (``chassis.testkit``): the migrated
database, the API, a running app with its consumer and workers, real receivers (HTTP and SMTP,
``chassis.testkit.outside``) and the events that feed it, checked against their contracts."""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pika
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from chassis.db import Database
from chassis.messaging import EXCHANGE, Envelope, ServiceQueues, declare_exchanges
from chassis.messaging.contracts import validate_envelope
from chassis.messaging.topology import declare_topology_at
from chassis.testing import wait_until
from chassis.testkit import TokenMinter
from chassis.testkit.outside import HttpReceiver, SmtpSink
from notification.config import Settings
from notification.events import CONSUMED
from notification.main import create_app

ALEMBIC_INI = Path(__file__).resolve().parents[1] / "alembic.ini"
CONTRACTS_DIR = Path(__file__).resolve().parents[2] / "contracts"
IDS = itertools.count(1000)


@pytest.fixture(scope="session")
def database_url(make_migrated_database) -> str:
    return make_migrated_database(ALEMBIC_INI, "notification")


@pytest.fixture(scope="session")
def admin(minter: TokenMinter) -> dict[str, str]:
    return minter.headers(user_id=900_001, role="admin")


def empty_tables(db: Database) -> None:
    with db.transaction() as session:
        session.execute(
            text(
                "TRUNCATE users, appointments, webhook_subscriptions, webhook_deliveries, mails, "
                "outbox_events, processed_events"
            )
        )


@pytest.fixture
def client(database_url: str, db: Database, minter: TokenMinter) -> Iterator[TestClient]:
    """The API on empty tables, without the consumer and the workers."""
    empty_tables(db)
    settings = Settings(database_url=database_url, messaging_enabled=False, workers_enabled=False)
    app = create_app(settings)
    minter.trust(app, "notification")
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    with HttpReceiver(hang_seconds=6) as server:
        yield server


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    with SmtpSink() as sink:
        yield sink


# Quick retries and a short time limit, so that retry schedules play out within a test.
FAST = {
    "delivery_retry_delays": (0.5, 1.0, 1.0),
    "delivery_poll_seconds": 0.1,
    "webhook_timeout_seconds": 2.0,
    "webhook_allow_private_targets": True,
    "reminder_sweep_seconds": 0.3,
    "mail_from": "Clinic <no-reply@clinic.test>",
    "clinic_timezone": "Europe/Berlin",
}


@pytest.fixture
def start_app(
    database_url: str, amqp_url: str, db: Database, minter: TokenMinter
) -> Iterator[Callable[..., TestClient]]:
    """``start_app(**settings)``: the app with its consumer and workers running (on empty tables
    the first time), stopped after the test."""
    stack: list[TestClient] = []
    empty_tables(db)

    def start(**overrides: Any) -> TestClient:
        values = {"database_url": database_url, "amqp_url": amqp_url, **FAST, **overrides}
        app = create_app(Settings(**values))
        minter.trust(app, "notification")
        client = TestClient(app)
        client.__enter__()
        stack.append(client)
        assert app.state.event_consumer.wait_ready(30), "the consumer did not subscribe"
        return client

    def stop(client: TestClient) -> None:
        """Stop one app now, as a process that ends (its workers finish what they hold)."""
        stack.remove(client)
        client.__exit__(None, None, None)

    start.stop = stop  # type: ignore[attr-defined]
    yield start
    for client in reversed(stack):
        client.__exit__(None, None, None)


class Events:
    """Publishes identity's and booking's events to ``clinic.events``, each checked first
    against its producer's contract: the consumer is fed only what the contracts allow."""

    def __init__(self, amqp_url: str) -> None:
        self.amqp_url = amqp_url

    def publish(self, event_type: str, data: dict[str, Any], *, occurred_at: datetime | None = None) -> dict:
        envelope = Envelope.new(event_type, data, producer=event_type.split(".")[0]).to_json()
        if occurred_at is not None:
            envelope["occurred_at"] = occurred_at.isoformat().replace("+00:00", "Z")
        validate_envelope(envelope, CONTRACTS_DIR)
        connection = pika.BlockingConnection(pika.URLParameters(self.amqp_url))
        try:
            channel = connection.channel()
            channel.confirm_delivery()
            declare_exchanges(channel)
            channel.basic_publish(
                EXCHANGE,
                event_type,
                json.dumps(envelope).encode(),
                pika.BasicProperties(
                    content_type="application/json",
                    delivery_mode=pika.DeliveryMode.Persistent,
                    message_id=envelope["event_id"],
                ),
                mandatory=True,
            )
        finally:
            connection.close()
        return envelope

    def user(self, user_id: int, role: str, *, email: str | None, name: str, revision: int = 1) -> dict:
        data = {
            "user_id": user_id,
            "full_name": name,
            "role": role,
            "is_active": True,
            "date_joined": "2026-11-27T08:00:00Z",
            "revision": revision,
        }
        if email is not None:
            data["email"] = email
        return self.publish("identity.user.registered", data)

    def booked(self, appointment: dict[str, Any]) -> dict:
        return self.publish("booking.appointment.booked", {**_facts(appointment), "status": "pending"})

    def status_changed(self, appointment: dict[str, Any], previous: str, status: str) -> dict:
        data = {**_facts(appointment), "previous_status": previous, "status": status}
        return self.publish("booking.appointment.status_changed", data)

    def cancelled(
        self, appointment: dict[str, Any], previous: str = "pending", reason: str | None = None
    ) -> dict:
        data = {
            **_facts(appointment),
            "previous_status": previous,
            "cancelled_by": "patient",
            "cancellation_reason": reason,
        }
        return self.publish("booking.appointment.cancelled", data)

    def rescheduled(self, appointment: dict[str, Any], new_start: datetime, status: str = "pending") -> dict:
        moved = {**appointment, "timeslot_id": appointment["timeslot_id"] + 1, "start_time": new_start}
        data = {
            **_facts(moved),
            "status": status,
            "reservation_id": str(uuid.uuid4()),
            "old_reservation_id": appointment["reservation_id"],
            "old_timeslot_id": appointment["timeslot_id"],
            "old_start_time": _iso(appointment["start_time"]),
            "old_end_time": _iso(appointment["start_time"] + timedelta(minutes=30)),
            "actor_id": appointment["patient_id"],
            "actor_role": "patient",
        }
        self.publish("booking.appointment.rescheduled", data)
        return moved


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _facts(appointment: dict[str, Any]) -> dict[str, Any]:
    return {
        "appointment_id": appointment["id"],
        "reservation_id": appointment["reservation_id"],
        "timeslot_id": appointment["timeslot_id"],
        "doctor_id": appointment["doctor_id"],
        "patient_id": appointment["patient_id"],
        "start_time": _iso(appointment["start_time"]),
        "end_time": _iso(appointment["start_time"] + timedelta(minutes=30)),
        # Left out when the appointment has none, as events published before booking sent it.
        **({"reason": appointment["reason"]} if "reason" in appointment else {}),
    }


@pytest.fixture(scope="session")
def topology(amqp_url: str) -> str:
    """The service's queue and bindings, as ``notification migrate`` declares them before it starts."""
    declare_topology_at(amqp_url, "notification", list(CONSUMED), Settings().event_retry_delays)
    return ServiceQueues("notification").main


@pytest.fixture
def events(amqp_url: str, topology: str) -> Events:
    """Events to publish, on a queue emptied of what earlier tests left."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        connection.channel().queue_purge(topology)
    finally:
        connection.close()
    return Events(amqp_url)


@pytest.fixture
def people(events: Events) -> dict[str, int]:
    """A patient and a doctor that identity has told about (names and addresses)."""
    patient, doctor = next(IDS), next(IDS)
    events.user(patient, "patient", email=f"patient{patient}@example.org", name="Pat Patient")
    events.user(doctor, "doctor", email=f"doctor{doctor}@example.org", name="Dora Doctor")
    return {"patient": patient, "doctor": doctor}


@pytest.fixture
def new_appointment(people: dict[str, int]) -> Callable[..., dict[str, Any]]:
    def make(*, starts_in: timedelta = timedelta(days=3)) -> dict[str, Any]:
        start = (datetime.now(UTC) + starts_in).replace(second=0, microsecond=0)
        return {
            "id": next(IDS),
            "reservation_id": str(uuid.uuid4()),
            "timeslot_id": next(IDS),
            "doctor_id": people["doctor"],
            "patient_id": people["patient"],
            "start_time": start,
        }

    return make


class WebhookAdmin:
    """What an admin does with the webhooks API, on a given client."""

    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers

    def subscribe(self, client: TestClient, url: str, event_types: list[str]) -> dict:
        body = {"url": url, "event_types": event_types}
        response = client.post("/api/webhooks/", json=body, headers=self.headers)
        assert response.status_code == 201, response.text
        return response.json()

    def deliveries(self, client: TestClient, webhook_id: int) -> list[dict]:
        response = client.get(f"/api/webhooks/{webhook_id}/deliveries/", headers=self.headers)
        assert response.status_code == 200, response.text
        return response.json()["results"]

    def wait_for_deliveries(self, client: TestClient, webhook_id: int, *statuses: str) -> list[dict]:
        """Wait until the deliveries' statuses (newest first) are ``statuses``."""

        def settled() -> list[dict] | None:
            found = self.deliveries(client, webhook_id)
            return found if [d["status"] for d in found] == list(statuses) else None

        return wait_until(settled, timeout=30, what=f"deliveries {statuses}")


@pytest.fixture(scope="session")
def webhooks(admin: dict[str, str]) -> WebhookAdmin:
    return WebhookAdmin(admin)
