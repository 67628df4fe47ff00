"""The appointment lifecycle through the gateway: rescheduling, history, each doctor's booking
policy and Idempotency-Key (spec/API.md, "Booking policy" and "Rescheduling, history and safe
retries")."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from .api import User, new_user, problem
from .stack import Stack, wait_until
from .test_appointments import (
    EVENT_DEADLINE,
    appointment,
    book,
    booked,
    cancel,
    free_timeslot_ids,
    new_timeslot,
    set_status,
    token_of,
    wait_until_free,
)


def reschedule(
    stack: Stack, token: str, appointment_id: int, timeslot_id: int, **headers: str
) -> httpx.Response:
    with stack.client(token) as client:
        return client.post(
            f"/api/appointments/{appointment_id}/reschedule/",
            json={"timeslot_id": timeslot_id},
            headers=headers,
        )


def history(stack: Stack, token: str, appointment_id: int) -> list[dict[str, Any]]:
    with stack.client(token) as client:
        response = client.get(f"/api/appointments/{appointment_id}/history/")
    assert response.status_code == 200, response.text
    return response.json()


def set_policy(stack: Stack, doctor: User, **rules: Any) -> dict[str, Any]:
    with stack.client(doctor.access) as client:
        response = client.patch("/api/doctors/me/booking-policy/", json=rules)
    assert response.status_code == 200, response.text
    return response.json()


def starting_in(stack: Stack, doctor: User, delta: timedelta) -> dict[str, Any]:
    """A timeslot of ``doctor`` (a doctor of the test's own) starting ``delta`` from now."""
    return new_timeslot(stack, doctor, start=(datetime.now(UTC) + delta).replace(second=0, microsecond=0))


@pytest.fixture(scope="module")
def admin_token(stack, admin) -> str:
    return token_of(stack, admin)


# -- rescheduling ----------------------------------------------------------------------------


def test_a_patient_moves_an_appointment_and_the_old_timeslot_is_free_again(stack, patient, doctor):
    first, second = new_timeslot(stack, doctor), new_timeslot(stack, doctor)
    made = booked(stack, patient, first["id"], reason="Migraine")
    set_status(stack, doctor.access, made["id"], "confirmed")

    response = reschedule(stack, patient.access, made["id"], second["id"])

    assert response.status_code == 200, response.text
    moved = response.json()
    assert (moved["id"], moved["status"], moved["reason"]) == (made["id"], "confirmed", "Migraine")
    assert (moved["timeslot_id"], moved["start_time"], moved["end_time"]) == (
        second["id"],
        second["start_time"],
        second["end_time"],
    )
    wait_until_free(stack, patient, doctor.id, first["id"])
    assert second["id"] not in free_timeslot_ids(stack, patient, doctor.id)
    # The old timeslot can be booked again; the new one cannot.
    other = new_user(stack, "patient")
    booked(stack, other, first["id"])
    assert problem(book(stack, other, second["id"]), 409)["code"] == "timeslot_not_available"


def test_a_refused_move_changes_nothing(stack, patient, doctor):
    first, taken = new_timeslot(stack, doctor), new_timeslot(stack, doctor)
    made = booked(stack, patient, first["id"])
    booked(stack, new_user(stack, "patient"), taken["id"])
    elsewhere = new_timeslot(stack, new_user(stack, "doctor"))

    assert (
        problem(reschedule(stack, patient.access, made["id"], taken["id"]), 409)["code"]
        == "timeslot_not_available"
    )
    assert problem(reschedule(stack, patient.access, made["id"], 2_000_000_000), 404)
    other_doctor = problem(reschedule(stack, patient.access, made["id"], elsewhere["id"]), 422)
    assert other_doctor["errors"][0]["field"] == "timeslot_id"
    problem(reschedule(stack, patient.access, made["id"], first["id"]), 409)

    assert appointment(stack, patient.access, made["id"]).json() == made
    assert elsewhere["id"] in free_timeslot_ids(stack, patient, elsewhere["doctor_id"])
    assert [e["action"] for e in history(stack, patient.access, made["id"])] == ["booked"]


def test_only_its_patient_or_an_admin_may_move_it(stack, patient, doctor, admin_token):
    first, second = new_timeslot(stack, doctor), new_timeslot(stack, doctor)
    made = booked(stack, patient, first["id"])
    problem(reschedule(stack, new_user(stack, "patient").access, made["id"], second["id"]), 404)
    problem(reschedule(stack, doctor.access, made["id"], second["id"]), 403)
    assert reschedule(stack, admin_token, made["id"], second["id"]).status_code == 200


def test_a_cancelled_appointment_cannot_be_moved(stack, patient, doctor):
    first, second = new_timeslot(stack, doctor), new_timeslot(stack, doctor)
    made = booked(stack, patient, first["id"])
    assert cancel(stack, patient.access, made["id"]).status_code == 204
    problem(reschedule(stack, patient.access, made["id"], second["id"]), 409)
    assert second["id"] in free_timeslot_ids(stack, patient, doctor.id)


# -- history ---------------------------------------------------------------------------------


def test_every_change_by_every_path_is_in_the_history(stack, doctor, admin_token):
    patient = new_user(stack, "patient", full_name="Hugo History")
    first, second = new_timeslot(stack, doctor), new_timeslot(stack, doctor)
    made = booked(stack, patient, first["id"])
    reschedule(stack, patient.access, made["id"], second["id"])
    set_status(stack, doctor.access, made["id"], "confirmed")
    with stack.client(admin_token) as client:
        assert client.delete(f"/api/users/{patient.id}/").status_code == 204

    entries = wait_until(
        lambda: (h := history(stack, doctor.access, made["id"])) and len(h) == 4 and h,
        timeout=EVENT_DEADLINE,
        what="the deactivation's cancellation in the history",
    )
    assert [(e["action"], e["actor_role"], e["actor_id"]) for e in entries] == [
        ("booked", "patient", patient.id),
        ("rescheduled", "patient", patient.id),
        ("status_changed", "doctor", doctor.id),
        ("cancelled", "system", None),
    ]
    assert (entries[1]["from_timeslot_id"], entries[1]["to_timeslot_id"]) == (first["id"], second["id"])
    assert (entries[2]["from_status"], entries[2]["to_status"]) == ("pending", "confirmed")
    assert (entries[3]["from_status"], entries[3]["to_status"]) == ("confirmed", "cancelled")
    assert entries[0]["from_status"] is None and entries[0]["reason"] is None
    with stack.client(admin_token) as client:
        assert client.get(f"/api/appointments/{made['id']}/history/").status_code == 200
    with stack.client(new_user(stack, "doctor").access) as client:
        problem(client.get(f"/api/appointments/{made['id']}/history/"), 404)


# -- booking policy --------------------------------------------------------------------------


def test_the_minimum_notice_and_the_horizon_bound_bookings_and_the_free_listing(stack, patient):
    doctor = new_user(stack, "doctor", full_name="Nora Notice")
    tomorrow = starting_in(stack, doctor, timedelta(days=1))
    in_a_week = starting_in(stack, doctor, timedelta(days=7))
    in_a_month = starting_in(stack, doctor, timedelta(days=30))
    rules = set_policy(stack, doctor, min_notice_minutes=2 * 24 * 60, booking_horizon_days=10)
    assert rules["booking_horizon_days"] == 10
    with stack.client(patient.access) as client:
        assert client.get(f"/api/doctors/{doctor.id}/").json()["booking_policy"] == rules

    wait_until(
        lambda: free_timeslot_ids(stack, patient, doctor.id) == [in_a_week["id"]],
        timeout=EVENT_DEADLINE,
        what="the policy applied to the free listing",
    )
    assert problem(book(stack, patient, tomorrow["id"]), 422)["errors"][0]["field"] == "timeslot_id"
    assert problem(book(stack, patient, in_a_month["id"]), 422)["code"] == "booking_horizon"
    made = booked(stack, patient, in_a_week["id"])
    # Rescheduling into a timeslot outside the policy is refused the same way.
    problem(reschedule(stack, patient.access, made["id"], tomorrow["id"]), 422)

    set_policy(stack, doctor, min_notice_minutes=0, booking_horizon_days=None)
    wait_until(
        lambda: set(free_timeslot_ids(stack, patient, doctor.id)) == {tomorrow["id"], in_a_month["id"]},
        timeout=EVENT_DEADLINE,
        what="the lifted policy applied",
    )


def test_the_per_patient_limit_and_the_cancellation_notice(stack, patient):
    doctor = new_user(stack, "doctor", full_name="Lena Limit")
    slots = [starting_in(stack, doctor, timedelta(days=1, hours=i)) for i in range(3)]
    set_policy(stack, doctor, max_active_per_patient=1, cancellation_notice_minutes=2 * 24 * 60)

    first = booked(stack, patient, slots[0]["id"])
    refused = wait_until(
        lambda: (r := book(stack, patient, slots[1]["id"])).status_code == 409 and r,
        timeout=EVENT_DEADLINE,
        what="the limit applied",
    )
    assert problem(refused, 409)["code"] == "too_many_active_appointments"
    assert slots[1]["id"] in free_timeslot_ids(stack, patient, doctor.id)  # nothing stays held
    # Another patient is not limited by this one's appointments.
    booked(stack, new_user(stack, "patient"), slots[1]["id"])

    # Within the cancellation notice the patient can neither cancel nor move; the doctor can.
    assert problem(cancel(stack, patient.access, first["id"]), 409)["code"] == "cancellation_notice"
    problem(reschedule(stack, patient.access, first["id"], slots[2]["id"]), 409)
    assert set_status(stack, doctor.access, first["id"], "cancelled").status_code == 200


def test_an_admin_manages_any_doctors_policy_and_bad_rules_are_422(stack, doctor, admin_token):
    with stack.client(admin_token) as client:
        url = f"/api/doctors/{doctor.id}/booking-policy/"
        assert client.get(url).json()["max_active_per_patient"] is None
        assert client.patch(url, json={"max_active_per_patient": 3}).json()["max_active_per_patient"] == 3
        bad = problem(client.patch(url, json={"booking_horizon_days": 0}), 422)
        assert bad["errors"][0]["field"] == "booking_horizon_days"
    with stack.client(doctor.access) as client:
        assert client.get("/api/doctors/me/booking-policy/").json()["max_active_per_patient"] == 3


# -- Idempotency-Key -------------------------------------------------------------------------


def test_a_booking_retried_with_its_key_books_once_and_replays_the_answer(stack, patient, doctor):
    slot = new_timeslot(stack, doctor)
    key = {"Idempotency-Key": str(uuid.uuid4())}
    with stack.client(patient.access) as client:
        first = client.post("/api/appointments/", json={"timeslot_id": slot["id"]}, headers=key)
        again = client.post("/api/appointments/", json={"timeslot_id": slot["id"]}, headers=key)
        other = client.post(
            "/api/appointments/", json={"timeslot_id": slot["id"], "reason": "x"}, headers=key
        )
        mine = client.get("/api/appointments/me/").json()
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert problem(other, 422)["errors"][0]["field"] == "Idempotency-Key"
    assert [a["id"] for a in mine["results"]] == [first.json()["id"]]


def test_a_refusal_is_replayed_and_a_key_belongs_to_its_user(stack, patient, doctor):
    slot = new_timeslot(stack, doctor)
    key = {"Idempotency-Key": "same-key-for-everyone"}
    booked(stack, new_user(stack, "patient"), slot["id"])
    with stack.client(patient.access) as client:
        first = client.post("/api/appointments/", json={"timeslot_id": slot["id"]}, headers=key)
        again = client.post("/api/appointments/", json={"timeslot_id": slot["id"]}, headers=key)
    assert problem(first, 409) == problem(again, 409)
    assert again.headers["Idempotent-Replayed"] == "true"
    free = new_timeslot(stack, doctor)
    with stack.client(new_user(stack, "patient").access) as client:
        assert (
            client.post("/api/appointments/", json={"timeslot_id": free["id"]}, headers=key).status_code
            == 201
        )


def test_a_move_and_a_timeslot_retried_with_their_keys_happen_once(stack, patient, doctor):
    first, second = new_timeslot(stack, doctor), new_timeslot(stack, doctor)
    made = booked(stack, patient, first["id"])
    once = reschedule(stack, patient.access, made["id"], second["id"], **{"Idempotency-Key": "move"})
    twice = reschedule(stack, patient.access, made["id"], second["id"], **{"Idempotency-Key": "move"})
    assert (once.status_code, twice.status_code) == (200, 200)
    assert twice.json() == once.json() and twice.headers["Idempotent-Replayed"] == "true"
    assert [e["action"] for e in history(stack, patient.access, made["id"])] == ["booked", "rescheduled"]

    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=90)
    body = {"start_time": start.isoformat(), "end_time": (start + timedelta(minutes=30)).isoformat()}
    with stack.client(doctor.access) as client:
        created = client.post("/api/timeslots/", json=body, headers={"Idempotency-Key": "slot"})
        replayed = client.post("/api/timeslots/", json=body, headers={"Idempotency-Key": "slot"})
        bad_key = client.post("/api/timeslots/", json=body, headers={"Idempotency-Key": "x" * 256})
    assert created.status_code == replayed.status_code == 201
    assert replayed.json() == created.json()
    assert problem(bad_key, 422)["errors"][0]["field"] == "Idempotency-Key"
