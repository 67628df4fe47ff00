"""Integration fixtures: callers, and the broker side of the messaging tests."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from chassis import testkit
from chassis.messaging import ProcessedEvent
from chassis.testkit import Caller, Callers
from chassis.testkit.http_contracts import checked


@pytest.fixture
def doctor(callers: Callers) -> Caller:
    return callers("doctor")


@pytest.fixture
def patient(callers: Callers) -> Caller:
    return callers("patient")


class Broker(testkit.Broker):
    """The kit's broker, with the events of identity and booking that scheduling consumes (each
    checked against its producer's contract) and the scheduling events it watches."""

    def publish_as(
        self, event_type: str, data: dict, *, producer: str, event_id: uuid.UUID | None = None
    ) -> uuid.UUID:
        """Publish an event as its producer's relay would; returns its event id."""
        return self.publish_event(event_type, data, producer=producer, event_id=event_id).event_id

    def user_registered(self, user_id: int, *, role: str = "doctor", revision: int = 1) -> uuid.UUID:
        data = {
            "user_id": user_id,
            "full_name": "Dr Test",
            "role": role,
            "is_active": True,
            "date_joined": datetime.now(UTC),
            "revision": revision,
        }
        return self.publish_as("identity.user.registered", data, producer="identity")

    def user_deactivated(self, user_id: int, *, revision: int) -> uuid.UUID:
        data = {
            "user_id": user_id,
            "role": "doctor",
            "revision": revision,
            "deactivated_at": datetime.now(UTC),
        }
        return self.publish_as("identity.user.deactivated", data, producer="identity")

    def booked(self, timeslot: dict, reservation: uuid.UUID, patient_id: int) -> uuid.UUID:
        data = {**_appointment(timeslot, reservation, patient_id), "status": "pending"}
        return self.publish_as("booking.appointment.booked", data, producer="booking")

    def cancelled(
        self, timeslot: dict, reservation: uuid.UUID, patient_id: int, *, event_id: uuid.UUID | None = None
    ) -> uuid.UUID:
        data = {
            **_appointment(timeslot, reservation, patient_id),
            "previous_status": "pending",
            "cancelled_by": "patient",
        }
        return self.publish_as("booking.appointment.cancelled", data, producer="booking", event_id=event_id)

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
        return self.publish_as("booking.appointment.rescheduled", data, producer="booking")

    def scheduling_events(self, doctor_id: int) -> list[dict]:
        """Every scheduling event about ``doctor_id`` received so far, oldest first."""
        return [e for e in self.published() if e["data"]["doctor_id"] == doctor_id]


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
def broker(messaging_client, amqp_url) -> Iterator[Broker]:
    broker = Broker(amqp_url)
    broker.watch("scheduling.timeslot.*")
    yield broker
    broker.close()


@pytest.fixture
def consumed(db, wait_until) -> Callable[[uuid.UUID], None]:
    """``consumed(event_id)`` waits until scheduling's consumer has processed that event."""

    def processed(event_id: uuid.UUID) -> bool:
        with db.transaction() as session:
            found = session.scalar(select(ProcessedEvent.event_id).where(ProcessedEvent.event_id == event_id))
        return found is not None

    return lambda event_id: wait_until(lambda: processed(event_id), what=f"event {event_id} to be consumed")


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
        self.internal = checked(client, "scheduling")  # booking's calls, checked against contracts/http
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
        response = self.internal.post(
            f"/internal/timeslots/{timeslot['id']}/hold", json=body, headers=self.from_booking
        )
        assert response.status_code == 200

    def release(self, timeslot: dict, patient: Caller, reservation: uuid.UUID) -> None:
        body = {"reservation_id": str(reservation)}
        response = self.internal.post(
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
