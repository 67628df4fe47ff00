"""Integration fixtures: callers, and the broker side of the messaging tests."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pika
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from chassis.messaging import EXCHANGE, Envelope, ProcessedEvent, declare_exchanges
from chassis.messaging.contracts import validate_envelope

Caller = tuple[int, dict[str, str]]  # (user id, Authorization header)


@pytest.fixture
def doctor(new_id, auth) -> Caller:
    doctor_id = new_id()
    return doctor_id, auth(doctor_id, "doctor")


@pytest.fixture
def patient(new_id, auth) -> Caller:
    patient_id = new_id()
    return patient_id, auth(patient_id, "patient")


class Broker:
    """The test's own view of the broker: publish other services' events, collect scheduling's."""

    def __init__(self, amqp_url: str, contracts_dir: Path) -> None:
        self.contracts_dir = contracts_dir
        self.connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
        self.channel = self.connection.channel()
        declare_exchanges(self.channel)
        self.queue = self.channel.queue_declare("", exclusive=True).method.queue
        self.channel.queue_bind(self.queue, EXCHANGE, routing_key="scheduling.timeslot.*")
        self.received: list[dict] = []

    def publish(
        self, event_type: str, data: dict, *, producer: str, event_id: uuid.UUID | None = None
    ) -> uuid.UUID:
        """Publish an event as its producer's relay would; returns its event id."""
        envelope = Envelope.new(event_type, data, producer=producer).to_json()
        if event_id is not None:
            envelope["event_id"] = str(event_id)
        # Consumers' tests feed only what the producers' contracts allow.
        validate_envelope(envelope, self.contracts_dir)
        properties = pika.BasicProperties(
            message_id=envelope["event_id"], content_type="application/json", delivery_mode=2
        )
        self.channel.basic_publish(EXCHANGE, event_type, json.dumps(envelope).encode(), properties)
        return uuid.UUID(envelope["event_id"])

    def user_registered(self, user_id: int, *, role: str = "doctor", revision: int = 1) -> uuid.UUID:
        data = {
            "user_id": user_id,
            "full_name": "Dr Test",
            "role": role,
            "is_active": True,
            "date_joined": datetime.now(UTC),
            "revision": revision,
        }
        return self.publish("identity.user.registered", data, producer="identity")

    def user_deactivated(self, user_id: int, *, revision: int) -> uuid.UUID:
        data = {
            "user_id": user_id,
            "role": "doctor",
            "revision": revision,
            "deactivated_at": datetime.now(UTC),
        }
        return self.publish("identity.user.deactivated", data, producer="identity")

    def booked(self, timeslot: dict, reservation: uuid.UUID, patient_id: int) -> uuid.UUID:
        data = {**_appointment(timeslot, reservation, patient_id), "status": "pending"}
        return self.publish("booking.appointment.booked", data, producer="booking")

    def cancelled(
        self, timeslot: dict, reservation: uuid.UUID, patient_id: int, *, event_id: uuid.UUID | None = None
    ) -> uuid.UUID:
        data = {
            **_appointment(timeslot, reservation, patient_id),
            "previous_status": "pending",
            "cancelled_by": "patient",
        }
        return self.publish("booking.appointment.cancelled", data, producer="booking", event_id=event_id)

    def rescheduled(
        self, old: dict, old_reservation: uuid.UUID, new: dict, new_reservation: uuid.UUID, patient_id: int
    ) -> uuid.UUID:
        data = {
            **_appointment(new, new_reservation, patient_id),
            "status": "pending",
            "old_reservation_id": old_reservation,
            "old_timeslot_id": old["id"],
            "old_start_time": old["start_time"],
            "old_end_time": old["end_time"],
            "actor_id": patient_id,
            "actor_role": "patient",
        }
        return self.publish("booking.appointment.rescheduled", data, producer="booking")

    def scheduling_events(self, doctor_id: int) -> list[dict]:
        """Every scheduling event about ``doctor_id`` received so far, oldest first."""
        while True:
            method, _, body = self.channel.basic_get(self.queue, auto_ack=True)
            if method is None:
                break
            self.received.append(json.loads(body))
        return [e for e in self.received if e["data"]["doctor_id"] == doctor_id]

    def close(self) -> None:
        self.connection.close()


def _appointment(timeslot: dict, reservation: uuid.UUID, patient_id: int) -> dict[str, Any]:
    return {
        "appointment_id": uuid.uuid4().int % 10**9 + 1,
        "reservation_id": reservation,
        "timeslot_id": timeslot["id"],
        "doctor_id": timeslot["doctor_id"],
        "patient_id": patient_id,
        "start_time": timeslot["start_time"],
        "end_time": timeslot["end_time"],
    }


@pytest.fixture(scope="session")
def messaging_client(make_client, amqp_url) -> Iterator[TestClient]:
    """The service with its outbox relay and event consumer running on this run's vhost."""
    with make_client(messaging_enabled=True, amqp_url=amqp_url) as client:
        assert client.app.state.event_consumer.wait_ready(15)
        assert client.app.state.outbox_relay.wait_ready(15)
        yield client


@pytest.fixture(scope="session")
def broker(messaging_client, amqp_url, contracts_dir) -> Iterator[Broker]:
    broker = Broker(amqp_url, contracts_dir)
    yield broker
    broker.close()


@pytest.fixture
def consumed(db, eventually) -> Callable[[uuid.UUID], None]:
    """``consumed(event_id)`` waits until scheduling's consumer has processed that event."""

    def processed(event_id: uuid.UUID) -> bool:
        with db.transaction() as session:
            found = session.scalar(select(ProcessedEvent.event_id).where(ProcessedEvent.event_id == event_id))
        return found is not None

    return lambda event_id: eventually(lambda: processed(event_id), what=f"event {event_id} to be consumed")


class Schedule:
    """What doctors and patients do through the messaging-enabled service's API."""

    def __init__(
        self,
        client: TestClient,
        when: Callable[..., datetime],
        rfc3339: Callable[[datetime], str],
        from_booking: dict[str, str],
    ):
        self.client = client
        self.when = when
        self.rfc3339 = rfc3339
        self.from_booking = from_booking  # booking's service token: holds and releases are its calls

    def publish(self, doctor: Caller, days_ahead: int) -> dict:
        start = self.when(days_ahead, 9) + timedelta(minutes=uuid.uuid4().int % 600)
        body = {"start_time": self.rfc3339(start), "end_time": self.rfc3339(start + timedelta(minutes=30))}
        response = self.client.post("/api/timeslots/", json=body, headers=doctor[1])
        assert response.status_code == 201
        return response.json()

    def hold(self, timeslot: dict, patient: Caller, reservation: uuid.UUID) -> None:
        body = {"reservation_id": str(reservation), "patient_id": patient[0]}
        response = self.client.post(
            f"/internal/timeslots/{timeslot['id']}/hold", json=body, headers=self.from_booking
        )
        assert response.status_code == 200

    def release(self, timeslot: dict, patient: Caller, reservation: uuid.UUID) -> None:
        body = {"reservation_id": str(reservation)}
        response = self.client.post(
            f"/internal/timeslots/{timeslot['id']}/release", json=body, headers=self.from_booking
        )
        assert response.status_code == 204

    def is_free(self, timeslot: dict, patient: Caller) -> bool:
        """Whether patients see ``timeslot`` among its doctor's free timeslots."""
        listed = self.client.get(
            f"/api/doctors/{timeslot['doctor_id']}/timeslots/", headers=patient[1], params={"page_size": 100}
        )
        return listed.status_code == 200 and timeslot["id"] in [t["id"] for t in listed.json()["results"]]

    def doctor_listed(self, doctor_id: int, patient: Caller) -> bool:
        return self.client.get(f"/api/doctors/{doctor_id}/timeslots/", headers=patient[1]).status_code == 200


@pytest.fixture
def schedule(messaging_client, when, rfc3339, from_booking) -> Schedule:
    return Schedule(messaging_client, when, rfc3339, from_booking)
