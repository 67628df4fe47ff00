"""``scheduling.timeslot.released``: every path that frees a held or booked timeslot announces it,
as its contract says, and nothing else does (the waitlist offers timeslots from it)."""

import uuid
from datetime import datetime, timedelta

from chassis.messaging.contracts import validate_envelope
from chassis.timezones import utcnow


def released(broker, doctor_id: int) -> list[dict]:
    return [
        e for e in broker.scheduling_events(doctor_id) if e["event_type"] == "scheduling.timeslot.released"
    ]


def test_a_released_hold_and_a_cancelled_appointment_are_announced(
    broker, schedule, consumed, doctor, patient, wait_until
):
    held, booked = schedule.publish(doctor, 81), schedule.publish(doctor, 82)
    held_by, booked_by = uuid.uuid4(), uuid.uuid4()
    schedule.hold(held, patient, held_by)
    schedule.release(held, patient, uuid.uuid4())  # not its reservation: a no-op, announced nowhere
    schedule.release(held, patient, held_by)
    schedule.hold(booked, patient, booked_by)
    consumed(broker.booked(booked, booked_by, patient[0]))
    consumed(broker.cancelled(booked, booked_by, patient[0]))

    events = wait_until(lambda: (e := released(broker, doctor[0])) and len(e) >= 2 and e, what="2 released")
    for envelope in events:
        validate_envelope(envelope, broker.contracts_dir)
    assert [(e["data"]["timeslot_id"], e["data"]["reservation_id"], e["data"]["reason"]) for e in events] == [
        (held["id"], str(held_by), "hold_released"),
        (booked["id"], str(booked_by), "appointment_cancelled"),
    ]
    assert events[0]["data"]["start_time"] == held["start_time"]


def test_a_hold_lasts_as_long_as_booking_asks(messaging_client, schedule, doctor, patient, from_booking):
    timeslot = schedule.publish(doctor, 83)
    body = {"reservation_id": str(uuid.uuid4()), "patient_id": patient[0], "hold_seconds": 900}
    response = messaging_client.post(
        f"/internal/timeslots/{timeslot['id']}/hold", json=body, headers=from_booking
    )

    assert response.status_code == 200
    assert datetime.fromisoformat(response.json()["held_until"]) > utcnow() + timedelta(minutes=14)
    for bad in (0, -1, 86401, "900"):
        refused = messaging_client.post(
            f"/internal/timeslots/{timeslot['id']}/hold",
            json={**body, "hold_seconds": bad},
            headers=from_booking,
        )
        assert refused.status_code == 422


def test_a_reschedule_announces_the_old_timeslot_freed_and_not_the_new_one(
    broker, schedule, consumed, doctor, patient, wait_until
):
    old, new = schedule.publish(doctor, 84), schedule.publish(doctor, 85)
    old_reservation, new_reservation = uuid.uuid4(), uuid.uuid4()
    schedule.hold(old, patient, old_reservation)
    consumed(broker.booked(old, old_reservation, patient[0]))
    schedule.hold(new, patient, new_reservation)

    consumed(broker.rescheduled(old, old_reservation, new, new_reservation, patient[0]))
    consumed(broker.rescheduled(old, old_reservation, new, new_reservation, patient[0]))  # redelivered

    events = wait_until(lambda: released(broker, doctor[0]), what="a released event")
    validate_envelope(events[0], broker.contracts_dir)
    assert [(e["data"]["timeslot_id"], e["data"]["reservation_id"], e["data"]["reason"]) for e in events] == [
        (old["id"], str(old_reservation), "appointment_rescheduled"),
    ]
