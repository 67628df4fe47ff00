"""Rescheduling: move an active appointment to another timeslot of its doctor, atomically.

The booking protocol (docs/booking-protocol.md) with a second reservation: hold the new
timeslot at scheduling under a new reservation id (or the patient's own waitlist offer of it,
accepted in the same transaction), then one booking transaction moves the
appointment (same id, same status), appends its history entry and writes
``booking.appointment.rescheduled`` (old and new reservation); scheduling books the new hold
and frees the old timeslot only while it still carries the old reservation. On any failure
the new hold is released at once and the appointment keeps its timeslot.
"""

from __future__ import annotations

from booking import events
from booking.adapters.scheduling_client import SchedulingClient
from booking.domain import AppointmentStatus, check_cancellation
from booking.errors import TimeslotRefused
from booking.models import Appointment
from booking.queries import AppointmentView, view_of
from booking.services import acceptance, history, policy, reservations
from booking.services.history import Action
from booking.services.status import locked
from chassis.auth import Principal
from chassis.db import Database
from chassis.idempotency import NO_KEY, Recorder
from chassis.timezones import utcnow

OTHER_DOCTOR = "An appointment can only move to another timeslot of the same doctor."
SAME_TIMESLOT = "The appointment is already in this timeslot."


def reschedule_appointment(
    db: Database,
    scheduling: SchedulingClient,
    appointment_id: int,
    caller: Principal,
    *,
    timeslot_id: int,
    record: Recorder = NO_KEY,
) -> AppointmentView:
    """Move the appointment to ``timeslot_id`` (its patient or an admin); 200 with the moved appointment.

    Checked before anything is held (so a refused move holds nothing) and again under the
    appointment's row lock once the new timeslot is held (so a concurrent change still wins).
    """
    with db.transaction() as session:
        appointment = _checked(session, appointment_id, caller, timeslot_id)
        patient_id, doctor_id = appointment.patient_id, appointment.doctor_id
    # A waitlist offer of the new timeslot to this patient is theirs to move into: it is accepted.
    hold, reservation_id, offered = acceptance.hold_for_booking(
        db, scheduling, patient_id=patient_id, timeslot_id=timeslot_id, doctor_id=doctor_id
    )
    try:
        with db.transaction() as session:
            appointment = _checked(session, appointment_id, caller, timeslot_id)
            if offered:
                acceptance.accept_offer(session.connection(), reservation_id)
            if hold.doctor_id != appointment.doctor_id:
                raise TimeslotRefused(422, "other_doctor", OTHER_DOCTOR)
            old = events.Moved(
                reservation_id=appointment.reservation_id,
                timeslot_id=appointment.timeslot_id,
                start_time=appointment.start_time,
                end_time=appointment.end_time,
            )
            appointment.reservation_id = reservation_id
            appointment.timeslot_id = hold.timeslot_id
            appointment.start_time = hold.start_time
            appointment.end_time = hold.end_time
            appointment.updated_at = utcnow()
            session.flush()
            history.record(
                session,
                appointment.id,
                actor=caller,
                action=Action.RESCHEDULED,
                from_timeslot_id=old.timeslot_id,
                to_timeslot_id=hold.timeslot_id,
            )
            events.publish_rescheduled(session, appointment, old, caller)
            moved = view_of(session, appointment.id)
            record.record(session, moved)
    except BaseException as exc:
        # Nothing moved (the old timeslot was never touched): the new one must not stay held.
        acceptance.release_unused_hold(db, scheduling, timeslot_id, reservation_id, offered=offered)
        refused = reservations.refusal(exc)
        if refused is not None:
            raise refused from exc
        raise
    return moved


def _checked(session, appointment_id: int, caller: Principal, timeslot_id: int) -> Appointment:
    """The appointment, locked, if ``caller`` may move it now to ``timeslot_id``; else the error why not."""
    appointment = locked(session, appointment_id, caller)
    now = utcnow()
    status = AppointmentStatus(appointment.status)
    check_cancellation(status, start_time=appointment.start_time, now=now, verb="rescheduled")
    if caller.role == "patient":
        policy.check_cancellation_notice(appointment, now)
    if appointment.timeslot_id == timeslot_id:
        raise TimeslotRefused(409, "timeslot_not_available", SAME_TIMESLOT)
    return appointment
