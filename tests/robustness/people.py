"""The people of a robustness test and the resources they own, made through the gateway."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ..e2e.api import PASSWORD, User, login, new_user
from ..e2e.stack import Stack, wait_until

EVENT_DEADLINE = 30.0

# Every timeslot made here starts at a time of its own (whole hours, days ahead), so
# resources of different tests never overlap.
_hours = itertools.count()


def next_start(days_ahead: int = 3) -> datetime:
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=days_ahead)
    return base + timedelta(hours=next(_hours))


# Waitlist entries wait on days of their own, years past every timeslot the tests make: an
# entry covering a test's new timeslot would be offered it and hold it (the owner patient's
# booking of it would get 409, seen in CI once the timeslots had reached the entries' days).
_waitlist_days = itertools.count(2000)


def next_waitlist_day() -> str:
    """A day (YYYY-MM-DD) no other waitlist entry and no timeslot of the tests covers."""
    return (datetime.now(UTC) + timedelta(days=next(_waitlist_days))).date().isoformat()


@dataclass
class People:
    stack: Stack
    patient: User
    other_patient: User
    doctor: User
    other_doctor: User
    admin: User
    deactivated: User

    def token(self, who: str) -> str | None:
        return None if who == "anonymous" else getattr(self, who).access

    def timeslot(self, doctor: User | None = None, **start: Any) -> dict[str, Any]:
        """A new free timeslot of ``doctor`` (the owner doctor by default), 30 minutes long."""
        doctor = doctor or self.doctor
        begin = next_start(**start)
        with self.stack.client(doctor.access) as client:
            response = client.post(
                "/api/timeslots/",
                json={
                    "start_time": begin.isoformat(),
                    "end_time": (begin + timedelta(minutes=30)).isoformat(),
                },
            )
        assert response.status_code == 201, response.text
        return response.json()

    def appointment(self, patient: User | None = None, doctor: User | None = None) -> dict[str, Any]:
        """A new pending appointment of ``patient`` with ``doctor`` (the owners by default)."""
        slot = self.timeslot(doctor)
        with self.stack.client((patient or self.patient).access) as client:
            response = client.post(
                "/api/appointments/", json={"timeslot_id": slot["id"], "reason": "Check-up"}
            )
        assert response.status_code == 201, response.text
        return response.json()

    def waitlist_entry(self) -> dict[str, Any]:
        """A new waitlist entry of the owner patient for the owner doctor, over days of its own."""
        day = next_waitlist_day()
        body = {"doctor_id": self.doctor.id, "date_from": day, "date_to": day}
        with self.stack.client(self.patient.access) as client:
            response = client.post("/api/waitlist/", json=body)
        assert response.status_code == 201, response.text
        return response.json()

    def feed_query(self) -> str:
        """The query string (the secret) of the owner patient's calendar feed URL."""
        with self.stack.client(self.patient.access) as client:
            response = client.get("/api/calendar/feed/")
        assert response.status_code == 200, response.text
        return response.json()["url"].split("?", 1)[1]

    def webhook(self) -> dict[str, Any]:
        """A new webhook subscription of the admin's, to a receiver on this machine (never called:
        the robustness stacks run notification-service without its workers)."""
        with self.stack.client(self.admin.access) as client:
            response = client.post(
                "/api/webhooks/", json={"url": "http://127.0.0.1:9/hook", "event_types": ["*"]}
            )
        assert response.status_code == 201, response.text
        return response.json()

    def delivery(self) -> tuple[int, int]:
        """(webhook id, delivery id) of a delivery: a new subscription, then a booking's event."""
        webhook = self.webhook()
        self.appointment()
        with self.stack.client(self.admin.access) as client:

            def delivered() -> list[dict[str, Any]]:
                response = client.get(f"/api/webhooks/{webhook['id']}/deliveries/")
                return response.json()["results"] if response.status_code == 200 else []

            deliveries = wait_until(delivered, timeout=30, what="a webhook delivery")
        return webhook["id"], deliveries[0]["id"]

    def victim(self, role: str = "patient") -> User:
        """A fresh user whose account a test may change or deactivate."""
        return new_user(self.stack, role, full_name="Vic Victim")

    def fresh_login(self, user: User) -> dict[str, Any]:
        with self.stack.client() as client:
            return login(client, user.email, user.password)


def admin_user(stack: Stack) -> User:
    with stack.client() as client:
        tokens = login(client, stack.admin.email, stack.admin.password)
        me = client.get("/api/auth/me/", headers={"Authorization": f"Bearer {tokens['access']}"}).json()
    return User(
        me["id"], stack.admin.email, stack.admin.password, "admin", tokens["access"], tokens["refresh"]
    )


def wait_for_doctor_profile(stack: Stack, doctor: User) -> None:
    """A doctor's profile arrives by event from identity: wait until doctor-service has it."""
    with stack.client(doctor.access) as client:
        wait_until(
            lambda: client.get("/api/doctors/me/").status_code == 200,
            timeout=EVENT_DEADLINE,
            what=f"doctor {doctor.id}'s profile",
        )


def make_people(stack: Stack) -> People:
    admin = admin_user(stack)
    doctors = [new_user(stack, "doctor", full_name=f"Dora Doctor {i}") for i in range(2)]
    patients = [new_user(stack, "patient", full_name=f"Pat Patient {i}") for i in range(2)]
    deactivated = new_user(stack, "patient", full_name="Gone Patient")
    with stack.client(admin.access) as client:
        assert client.delete(f"/api/users/{deactivated.id}/").status_code == 204
    people = People(stack, patients[0], patients[1], doctors[0], doctors[1], admin, deactivated)
    for doctor in doctors:
        wait_for_doctor_profile(stack, doctor)
        people.timeslot(doctor)  # scheduling knows the doctor from here on, events or not
    return people


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}@clinic.example.com"


__all__ = ["PASSWORD", "People", "make_people", "next_start", "next_waitlist_day", "unique_email"]
