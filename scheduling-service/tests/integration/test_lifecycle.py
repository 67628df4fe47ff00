"""Booking policy (notice and horizon), reschedules and Idempotency-Key on scheduling's side."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta

from sqlalchemy import select, text

from scheduling.domain import check_booking_window
from scheduling.models import Timeslot
from scheduling.queries import DOCTOR_ALLOWS_BOOKING
from scheduling.services.doctors import remember_policy


def set_policy(db, doctor_id: int, revision: int, *, notice: int = 0, horizon: int | None = None) -> None:
    policy = {"min_notice_minutes": notice, "booking_horizon_days": horizon}
    with db.transaction() as session:
        remember_policy(session, doctor_id, policy, revision=revision, is_active=True)


def publish(client, doctor, start) -> dict:
    end = start + timedelta(minutes=30)
    body = {"start_time": start.isoformat(), "end_time": end.isoformat()}
    response = client.post("/api/timeslots/", json=body, headers=doctor[1])
    assert response.status_code == 201, response.text
    return response.json()


def hold(client, timeslot, patient_id, headers, **extra):
    body = {"reservation_id": str(uuid.uuid4()), "patient_id": patient_id, **extra}
    return client.post(f"/internal/timeslots/{timeslot['id']}/hold", json=body, headers=headers)


def free_ids(client, doctor_id, patient) -> list[int]:
    listed = client.get(f"/api/doctors/{doctor_id}/timeslots/", headers=patient[1], params={"page_size": 100})
    return [t["id"] for t in listed.json()["results"]]


def test_notice_and_horizon_bound_holds_and_the_free_listing(client, db, doctor, patient, when, from_booking):
    soon = publish(client, doctor, when(1, 9))
    later = publish(client, doctor, when(20, 9))
    inside = publish(client, doctor, when(5, 9))
    set_policy(db, doctor[0], 1, notice=3 * 24 * 60, horizon=10)

    assert free_ids(client, doctor[0], patient) == [inside["id"]]
    too_soon = hold(client, soon, patient[0], from_booking)
    assert (too_soon.status_code, too_soon.json()["code"]) == (422, "booking_notice")
    assert too_soon.json()["errors"][0]["field"] == "timeslot_id"
    too_far = hold(client, later, patient[0], from_booking)
    assert (too_far.status_code, too_far.json()["code"]) == (422, "booking_horizon")
    assert hold(client, inside, patient[0], from_booking).status_code == 200


def test_the_horizon_counts_days_of_24_hours_in_any_session_time_zone(client, db, doctor, new_york_dst):
    # The rule (domain.check_booking_window) and the hold's UPDATE must agree on a horizon's
    # day, also where the database's sessions run in a zone whose clocks change (a calendar day
    # across spring-forward is 23 hours there).
    spring, _ = new_york_dst
    now = datetime.combine(spring - timedelta(days=1), time(12), tzinfo=UTC)
    start = now + timedelta(hours=23, minutes=30)
    timeslot = publish(client, doctor, start)
    set_policy(db, doctor[0], 1, horizon=1)

    check_booking_window(start, now=now, min_notice_minutes=0, booking_horizon_days=1)  # inside
    with db.transaction() as session:
        session.execute(text("SET LOCAL timezone = 'America/New_York'"))
        bookable = select(Timeslot.id).where(Timeslot.id == timeslot["id"], DOCTOR_ALLOWS_BOOKING)
        assert session.scalar(bookable, {"p_now": now}) == timeslot["id"]


def test_a_policy_change_applies_to_later_holds_and_stale_ones_change_nothing(
    client, db, doctor, patient, when, from_booking
):
    timeslot = publish(client, doctor, when(1, 10))
    set_policy(db, doctor[0], 2, notice=3 * 24 * 60)
    set_policy(db, doctor[0], 1, notice=0)  # older revision, arriving late
    assert hold(client, timeslot, patient[0], from_booking).status_code == 422
    set_policy(db, doctor[0], 3, notice=0)
    assert free_ids(client, doctor[0], patient) == [timeslot["id"]]
    assert hold(client, timeslot, patient[0], from_booking).status_code == 200


def test_a_reschedule_holds_only_a_timeslot_of_the_appointments_doctor(
    client, doctor, patient, new_id, when, from_booking
):
    timeslot = publish(client, doctor, when(3, 11))
    refused = hold(client, timeslot, patient[0], from_booking, doctor_id=new_id())
    assert (refused.status_code, refused.json()["code"]) == (422, "other_doctor")
    assert hold(client, timeslot, patient[0], from_booking, doctor_id=doctor[0]).status_code == 200


def test_a_rescheduled_event_books_the_new_timeslot_and_frees_the_old(
    broker, schedule, consumed, doctor, patient
):
    old, new = schedule.publish(doctor, 81), schedule.publish(doctor, 82)
    old_reservation, new_reservation = uuid.uuid4(), uuid.uuid4()
    schedule.hold(old, patient, old_reservation)
    consumed(broker.booked(old, old_reservation, patient[0]))
    schedule.hold(new, patient, new_reservation)

    consumed(broker.rescheduled(old, old_reservation, new, new_reservation, patient[0]))

    assert schedule.is_free(old, patient)
    assert not schedule.is_free(new, patient)
    # Booked, not merely held: releasing the new hold no longer frees it.
    schedule.release(new, patient, new_reservation)
    assert not schedule.is_free(new, patient)


def test_a_stale_reschedule_never_frees_a_timeslot_booked_again(broker, schedule, consumed, doctor, patient):
    old, new = schedule.publish(doctor, 83), schedule.publish(doctor, 84)
    old_reservation, new_reservation, someone_else = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    # The old timeslot was freed and booked again by another reservation before the event came.
    schedule.hold(old, patient, someone_else)
    consumed(broker.booked(old, someone_else, patient[0]))
    schedule.hold(new, patient, new_reservation)
    consumed(broker.rescheduled(old, old_reservation, new, new_reservation, patient[0]))
    assert not schedule.is_free(old, patient)
    assert not schedule.is_free(new, patient)


def test_a_timeslot_posted_again_with_its_key_is_created_once(client, doctor, when):
    start = when(7, 14)
    body = {"start_time": start.isoformat(), "end_time": (start + timedelta(minutes=30)).isoformat()}
    headers = doctor[1] | {"Idempotency-Key": "slot-1"}
    first = client.post("/api/timeslots/", json=body, headers=headers)
    again = client.post("/api/timeslots/", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    # Without the key the same request is a new one, which overlaps: 409.
    assert client.post("/api/timeslots/", json=body, headers=doctor[1]).status_code == 409
    other = client.post("/api/timeslots/", json={**body, "end_time": body["start_time"]}, headers=headers)
    assert other.status_code == 422


def test_a_pattern_posted_again_with_its_key_is_created_once(client, doctor, when):
    day = when(30).date()
    body = {
        "date_from": day.isoformat(),
        "date_to": day.isoformat(),
        "weekdays": list(range(7)),
        "day_start": "09:00",
        "day_end": "10:00",
        "slot_minutes": 30,
    }
    headers = doctor[1] | {"Idempotency-Key": "week-1"}
    first = client.post("/api/timeslots/bulk/", json=body, headers=headers)
    again = client.post("/api/timeslots/bulk/", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert len(first.json()["created"]) == 2
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
