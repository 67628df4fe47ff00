"""identity's user events, through RabbitMQ, to the doctors read model."""

import uuid


def test_a_registered_doctor_is_listed_for_patients(broker, schedule, new_id, patient, wait_until):
    doctor_id = new_id()
    assert not schedule.doctor_listed(doctor_id, patient)
    broker.user_registered(doctor_id)
    wait_until(lambda: schedule.doctor_listed(doctor_id, patient), what="the doctor to be known")


def test_a_deactivated_doctors_future_free_timeslots_are_removed_and_announced(
    broker, schedule, doctor, patient, wait_until
):
    doctor_id, _ = doctor
    free_one = schedule.publish(doctor, 71)
    held_one = schedule.publish(doctor, 72)
    schedule.hold(held_one, patient, uuid.uuid4())
    broker.user_deactivated(doctor_id, revision=2)

    wait_until(lambda: not schedule.doctor_listed(doctor_id, patient), what="the doctor to be gone")
    deleted = wait_until(
        lambda: [
            e for e in broker.scheduling_events(doctor_id) if e["event_type"] == "scheduling.timeslot.deleted"
        ],
        what="a deleted event",
    )
    # The held one stays: booking cancels its appointment, and that frees it.
    assert [(e["data"]["timeslot_id"], e["data"]["reason"]) for e in deleted] == [
        (free_one["id"], "doctor_unavailable")
    ]


def test_a_deactivated_doctors_booked_timeslot_is_deleted_once_its_cancellation_frees_it(
    broker, schedule, consumed, doctor, patient, wait_until
):
    doctor_id, _ = doctor
    booked = schedule.publish(doctor, 73)
    reservation = uuid.uuid4()
    schedule.hold(booked, patient, reservation)
    consumed(broker.booked(booked, reservation, patient[0]))
    consumed(broker.user_deactivated(doctor_id, revision=2))
    consumed(broker.cancelled(booked, reservation, patient[0]))  # booking's cascade

    def deleted() -> list[dict]:
        return [
            e for e in broker.scheduling_events(doctor_id) if e["event_type"] == "scheduling.timeslot.deleted"
        ]

    [event] = wait_until(deleted, what="the freed timeslot's deleted event")
    assert (event["data"]["timeslot_id"], event["data"]["reason"]) == (booked["id"], "doctor_unavailable")
    assert not [e for e in broker.scheduling_events(doctor_id) if e["event_type"].endswith(".released")]
    consumed(broker.user_registered(doctor_id, revision=3))  # reactivated
    wait_until(lambda: schedule.doctor_listed(doctor_id, patient), what="the doctor to be back")
    assert not schedule.is_free(booked, patient)


def test_a_stale_identity_event_arriving_late_is_ignored(broker, schedule, consumed, new_id, patient):
    doctor_id = new_id()
    broker.user_deactivated(doctor_id, revision=2)
    consumed(broker.user_registered(doctor_id, revision=1))
    assert not schedule.doctor_listed(doctor_id, patient)


def test_a_user_who_is_not_a_doctor_is_not_listed(broker, schedule, consumed, new_id, patient):
    user_id = new_id()
    consumed(broker.user_registered(user_id, role="patient"))
    assert not schedule.doctor_listed(user_id, patient)
