"""Rescheduling, history, the booking policy's booking-side rules and Idempotency-Key.

scheduling-service is the stand-in here (its own rules are tested in its suite and the
whole flow through the gateway in tests/e2e).
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from booking.models import Appointment
from chassis.testkit import wait_until


@pytest.fixture
def as_user(callers):
    return lambda user_id, role: callers(role, user_id).headers


def policy_event(doctor: int, revision: int, **policy) -> dict:
    return {
        "doctor_id": doctor,
        "full_name": "Dr Who",
        "specialty": "",
        "bio": "",
        "years_of_experience": 0,
        "is_active": True,
        "revision": revision,
        "booking_policy": {
            "min_notice_minutes": 0,
            "booking_horizon_days": None,
            "cancellation_notice_minutes": 0,
            "max_active_per_patient": None,
        }
        | policy,
    }


def publish_policy(app, broker, doctor: int, revision: int, **policy) -> None:
    """doctor.profile.updated with this policy, and wait until booking applied it."""
    broker.publish_event("doctor.profile.updated", policy_event(doctor, revision, **policy))

    def applied() -> bool:
        with app.state.db.transaction() as session:
            found = session.execute(
                text("SELECT revision FROM doctor_policies WHERE doctor_id = :d"), {"d": doctor}
            ).scalar()
        return found is not None and found >= revision

    wait_until(applied)


@pytest.fixture
def booked(client, scheduling, new_id, as_user):
    """A patient's pending appointment through the API, and a second free timeslot of its doctor."""
    patient, doctor, first, second = new_id(), new_id(), new_id(), new_id()
    scheduling.add_timeslot(first, doctor)
    scheduling.add_timeslot(second, doctor, starts_in=timedelta(days=2))
    headers = as_user(patient, "patient")
    appointment = client.post("/api/appointments/", json={"timeslot_id": first}, headers=headers).json()
    return appointment, headers, first, second, doctor


def book(client, timeslot_id, headers) -> dict:
    response = client.post("/api/appointments/", json={"timeslot_id": timeslot_id}, headers=headers)
    assert response.status_code == 201
    return response.json()


def reschedule(client, appointment, timeslot_id, headers, **extra):
    return client.post(
        f"/api/appointments/{appointment['id']}/reschedule/",
        json={"timeslot_id": timeslot_id},
        headers=headers | extra,
    )


def history(client, appointment, headers) -> list[dict]:
    response = client.get(f"/api/appointments/{appointment['id']}/history/", headers=headers)
    assert response.status_code == 200
    return response.json()


def test_a_reschedule_moves_the_appointment_and_keeps_its_id_and_status(client, scheduling, booked):
    appointment, headers, first, second, _ = booked
    moved = reschedule(client, appointment, second, headers)
    assert moved.status_code == 200
    body = moved.json()
    assert (body["id"], body["status"], body["timeslot_id"]) == (appointment["id"], "pending", second)
    assert body["start_time"] == scheduling.timeslots[second].start_time.isoformat().replace("+00:00", "Z")
    assert scheduling.holder_of(second) is not None
    assert scheduling.releases == []  # the old timeslot is freed by the event, not by a release
    again = client.get(f"/api/appointments/{appointment['id']}/", headers=headers).json()
    assert again["timeslot_id"] == second


def test_a_reschedule_is_announced_with_both_reservations(client, scheduling, broker, booked):
    appointment, headers, first, second, _ = booked
    old_reservation = scheduling.holder_of(first)
    reschedule(client, appointment, second, headers)
    [event] = wait_until(
        lambda: broker.published("booking.appointment.rescheduled", appointment_id=appointment["id"])
    )
    # (checked against its contract on arrival)
    data = event["data"]
    assert (data["old_timeslot_id"], data["timeslot_id"]) == (first, second)
    assert data["old_reservation_id"] == old_reservation
    assert data["reservation_id"] == scheduling.holder_of(second)
    assert data["actor_role"] == "patient"


@pytest.mark.parametrize("refusal", ["taken", "missing", "started"])
def test_a_refused_reschedule_changes_nothing(client, scheduling, booked, new_id, refusal):
    appointment, headers, first, second, doctor = booked
    if refusal == "taken":
        scheduling.timeslots[second].reservation_id = str(uuid.uuid4())
    elif refusal == "started":
        second = new_id()
        scheduling.add_timeslot(second, doctor, starts_in=-timedelta(minutes=5))
    else:
        second = new_id()
    status = {"taken": 409, "missing": 404, "started": 422}[refusal]
    assert reschedule(client, appointment, second, headers).status_code == status
    after = client.get(f"/api/appointments/{appointment['id']}/", headers=headers).json()
    assert after == appointment
    assert [entry["action"] for entry in history(client, appointment, headers)] == ["booked"]


def test_another_doctors_timeslot_is_a_422_and_holds_nothing(client, scheduling, booked, new_id):
    appointment, headers, *_ = booked
    elsewhere = new_id()
    scheduling.add_timeslot(elsewhere, new_id())
    refused = reschedule(client, appointment, elsewhere, headers)
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "timeslot_id"
    assert scheduling.holder_of(elsewhere) is None


def test_a_move_that_cannot_be_stored_releases_the_new_hold(client, app, scheduling, booked, seed, new_id):
    appointment, headers, first, second, doctor = booked
    # Another active appointment already sits on the new timeslot (the database's last word).
    seed(patient_id=new_id(), doctor_id=doctor, timeslot_id=second)
    assert reschedule(client, appointment, second, headers).status_code == 409
    assert scheduling.holder_of(second) is None
    assert client.get(f"/api/appointments/{appointment['id']}/", headers=headers).json() == appointment


def test_only_its_patient_or_an_admin_may_reschedule(client, booked, as_user, new_id):
    appointment, _, _, second, doctor = booked
    assert reschedule(client, appointment, second, as_user(new_id(), "patient")).status_code == 404
    assert reschedule(client, appointment, second, as_user(doctor, "doctor")).status_code == 403
    assert reschedule(client, appointment, second, as_user(new_id(), "admin")).status_code == 200


def test_a_cancelled_or_started_appointment_cannot_be_rescheduled(client, scheduling, seed, new_id, as_user):
    patient, doctor, slot = new_id(), new_id(), new_id()
    scheduling.add_timeslot(slot, doctor)
    headers = as_user(patient, "patient")
    cancelled = seed(patient_id=patient, doctor_id=doctor, status="cancelled")
    started = seed(patient_id=patient, doctor_id=doctor, starts_in=-timedelta(minutes=1))
    for appointment in (cancelled, started):
        assert reschedule(client, {"id": appointment.id}, slot, headers).status_code == 409
    assert scheduling.holds == []


def test_the_patients_reschedule_respects_the_cancellation_notice(
    client, app, broker, scheduling, new_id, as_user
):
    patient, doctor, soon_slot, slot = new_id(), new_id(), new_id(), new_id()
    scheduling.add_timeslot(soon_slot, doctor, starts_in=timedelta(minutes=60))
    scheduling.add_timeslot(slot, doctor)
    publish_policy(app, broker, doctor, 2, cancellation_notice_minutes=120)
    soon = book(client, soon_slot, as_user(patient, "patient"))
    assert reschedule(client, soon, slot, as_user(patient, "patient")).status_code == 409
    assert (
        client.delete(f"/api/appointments/{soon['id']}/", headers=as_user(patient, "patient")).status_code
        == 409
    )
    # The admin is not bound by it.
    assert reschedule(client, soon, slot, as_user(new_id(), "admin")).status_code == 200


def test_a_raised_cancellation_notice_never_reaches_appointments_booked_before_it(
    client, app, broker, scheduling, new_id, as_user
):
    patient, doctor, before, after = new_id(), new_id(), new_id(), new_id()
    headers = as_user(patient, "patient")
    for slot in (before, after):
        scheduling.add_timeslot(slot, doctor, starts_in=timedelta(minutes=60))
    booked_before = book(client, before, headers)  # no policy yet: no notice
    publish_policy(app, broker, doctor, 2, cancellation_notice_minutes=24 * 60)
    booked_after = book(client, after, headers)
    assert client.delete(f"/api/appointments/{booked_before['id']}/", headers=headers).status_code == 204
    # A booking made after the change is bound by it.
    refused = client.delete(f"/api/appointments/{booked_after['id']}/", headers=headers)
    assert (refused.status_code, refused.json()["code"]) == (409, "cancellation_notice")


def test_a_lowered_cancellation_notice_never_frees_appointments_booked_under_it(
    client, app, broker, scheduling, new_id, as_user
):
    patient, doctor, slot, later = new_id(), new_id(), new_id(), new_id()
    headers = as_user(patient, "patient")
    scheduling.add_timeslot(slot, doctor, starts_in=timedelta(minutes=60))
    scheduling.add_timeslot(later, doctor, starts_in=timedelta(minutes=90))
    publish_policy(app, broker, doctor, 2, cancellation_notice_minutes=120)
    appointment = book(client, slot, headers)
    publish_policy(app, broker, doctor, 3, cancellation_notice_minutes=0)
    refused = client.delete(f"/api/appointments/{appointment['id']}/", headers=headers)
    assert (refused.status_code, refused.json()["code"]) == (409, "cancellation_notice")
    assert reschedule(client, appointment, later, headers).status_code == 409
    # A move by an admin keeps the notice it was booked under: the patient still cannot cancel.
    assert reschedule(client, appointment, later, as_user(new_id(), "admin")).status_code == 200
    assert client.delete(f"/api/appointments/{appointment['id']}/", headers=headers).status_code == 409


def test_the_per_patient_limit_refuses_one_more_booking(client, app, broker, scheduling, new_id, as_user):
    patient, doctor, first, second, third = new_id(), new_id(), new_id(), new_id(), new_id()
    for slot in (first, second, third):
        scheduling.add_timeslot(slot, doctor)
    headers = as_user(patient, "patient")
    publish_policy(app, broker, doctor, 2, max_active_per_patient=1)
    assert client.post("/api/appointments/", json={"timeslot_id": first}, headers=headers).status_code == 201
    refused = client.post("/api/appointments/", json={"timeslot_id": second}, headers=headers)
    assert refused.status_code == 409
    assert refused.json()["code"] == "too_many_active_appointments"
    assert scheduling.holder_of(second) is None  # the hold was released
    # A stale policy event (older revision) changes nothing.
    stale = broker.publish_event(
        "doctor.profile.updated", policy_event(doctor, 1, max_active_per_patient=None)
    )
    wait_until(lambda: _processed(app, stale.event_id))
    assert client.post("/api/appointments/", json={"timeslot_id": third}, headers=headers).status_code == 409


def test_history_has_one_entry_per_change_by_every_path(client, booked, as_user, new_id, broker):
    appointment, headers, first, second, doctor = booked
    patient = appointment["patient_id"]
    reschedule(client, appointment, second, headers)
    client.patch(
        f"/api/appointments/{appointment['id']}/status/",
        json={"status": "confirmed"},
        headers=as_user(doctor, "doctor"),
    )
    broker.publish_event(
        "identity.user.deactivated",
        {"user_id": patient, "role": "patient", "revision": 5, "deactivated_at": "2030-01-01T00:00:00Z"},
    )
    entries = wait_until(
        lambda: (h := history(client, appointment, as_user(doctor, "doctor"))) and len(h) == 4 and h
    )
    assert [e["action"] for e in entries] == ["booked", "rescheduled", "status_changed", "cancelled"]
    assert entries[0] | {"at": None} == {
        "at": None, "actor_id": patient, "actor_role": "patient", "action": "booked", "from_status": None,
        "to_status": "pending", "from_timeslot_id": None, "to_timeslot_id": first, "reason": None,
    }  # fmt: skip
    assert (entries[1]["from_timeslot_id"], entries[1]["to_timeslot_id"]) == (first, second)
    assert (entries[2]["actor_id"], entries[2]["from_status"], entries[2]["to_status"]) == (
        doctor,
        "pending",
        "confirmed",
    )
    assert entries[3]["actor_role"] == "system" and entries[3]["actor_id"] is None
    assert entries[3]["reason"] == "The patient's account was deactivated."
    assert entries == sorted(entries, key=lambda e: e["at"])


def test_history_is_for_those_who_may_see_the_appointment(client, booked, as_user, new_id):
    appointment, *_ = booked
    url = f"/api/appointments/{appointment['id']}/history/"
    assert client.get(url, headers=as_user(new_id(), "patient")).status_code == 404
    assert client.get(url, headers=as_user(new_id(), "doctor")).status_code == 404
    assert client.get(url, headers=as_user(new_id(), "admin")).status_code == 200


def test_history_is_append_only_in_the_database(app, booked):
    with pytest.raises(DBAPIError, match="append-only"), app.state.db.transaction() as session:
        session.execute(text("UPDATE appointment_history SET reason = 'rewritten'"))
    with pytest.raises(DBAPIError, match="append-only"), app.state.db.transaction() as session:
        session.execute(text("DELETE FROM appointment_history"))


def test_a_booking_retried_with_its_key_is_booked_once(client, app, scheduling, new_id, as_user):
    slot = new_id()
    scheduling.add_timeslot(slot, new_id())
    headers = as_user(new_id(), "patient") | {"Idempotency-Key": str(uuid.uuid4())}
    first = client.post("/api/appointments/", json={"timeslot_id": slot}, headers=headers)
    again = client.post("/api/appointments/", json={"timeslot_id": slot}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(scheduling.holds) == 1
    other = client.post("/api/appointments/", json={"timeslot_id": new_id()}, headers=headers)
    assert other.status_code == 422
    with app.state.db.transaction() as session:
        assert session.query(Appointment).count() == 1


def test_concurrent_retries_of_one_key_book_once(client, app, scheduling, new_id, as_user):
    slot = new_id()
    scheduling.add_timeslot(slot, new_id())
    scheduling.delays[slot] = 0.3
    headers = as_user(new_id(), "patient") | {"Idempotency-Key": "retry-1"}
    with ThreadPoolExecutor(4) as pool:
        answers = list(
            pool.map(
                lambda _: client.post("/api/appointments/", json={"timeslot_id": slot}, headers=headers),
                range(4),
            )
        )
    assert sorted(a.status_code for a in answers).count(201) == 1
    assert {a.status_code for a in answers} <= {201, 409}
    with app.state.db.transaction() as session:
        assert session.query(Appointment).count() == 1


def test_a_reschedule_retried_with_its_key_moves_once(client, scheduling, booked):
    appointment, headers, first, second, _ = booked
    keyed = {"Idempotency-Key": "move-1"}
    first_answer = reschedule(client, appointment, second, headers, **keyed)
    again = reschedule(client, appointment, second, headers, **keyed)
    assert first_answer.status_code == again.status_code == 200
    assert again.json() == first_answer.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len([h for h in scheduling.holds if h.get("doctor_id")]) == 1


def _processed(app, event_id) -> bool:
    with app.state.db.transaction() as session:
        return bool(
            session.execute(
                text("SELECT 1 FROM processed_events WHERE event_id = :e"), {"e": event_id}
            ).first()
        )
