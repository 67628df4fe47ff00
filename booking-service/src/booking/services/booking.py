"""Booking a timeslot: the busiest write of the system, and its one fenced fast path.

Booking follows docs/booking-protocol.md: hold the timeslot at scheduling (its owner), then
store the appointment and its ``booked`` event in one transaction; if that fails, release the
hold at once. Its statements are prebuilt Core on one connection (``db.engine.begin()``)
instead of the ORM session: ``make bench`` row 6 (``POST /api/appointments/``) justifies it.
Every other write goes through the ORM session.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Connection, bindparam, insert, literal, select
from sqlalchemy.dialects.postgresql import insert as pg_insert

from booking import events
from booking.adapters import metrics
from booking.adapters.scheduling_client import SchedulingClient
from booking.domain import (
    AppointmentStatus,
    patient_booking,
)
from booking.errors import AccountDeactivated, TimeslotRefused
from booking.models import Appointment, AppointmentHistory, User
from booking.queries import AppointmentView
from booking.services import acceptance, history, policy, reservations
from booking.services.history import Action
from chassis.auth import Principal
from chassis.db import Database
from chassis.idempotency import NO_KEY, Recorder


def book_appointment(
    db: Database,
    scheduling: SchedulingClient,
    *,
    caller: Principal,
    timeslot_id: int,
    reason: str | None,
    record: Recorder = NO_KEY,
) -> AppointmentView:
    """Book ``timeslot_id`` for ``caller`` (a patient books for themselves: ``domain.patient_booking``):
    a pending appointment that really holds the timeslot.

    The busiest write of the system, so plain prebuilt Core statements on one connection,
    five round trips after the hold: lock both users (their names come back with the lock),
    read the doctor's policy (``policy``: its per-patient limit, and the cancellation notice the
    appointment keeps whatever the policy becomes), insert the appointment with its history
    entry, insert its event together with the relay's wake-up, commit. ``record`` stores the
    answer of an Idempotency-Key in the same transaction.
    """
    patient_id = patient_booking(caller.role, caller.id)
    # The patient's own waitlist offer of this timeslot is held for them: booking converts it.
    hold, reservation_id, offered = acceptance.hold_for_booking(
        db, scheduling, patient_id=patient_id, timeslot_id=timeslot_id
    )
    try:
        with db.engine.begin() as connection:
            if offered:
                acceptance.accept_offer(connection, reservation_id)
            names = _lock_users(connection, patient_id=patient_id, doctor_id=hold.doctor_id)
            notice = policy.check_booking(connection, patient_id=patient_id, doctor_id=hold.doctor_id)
            stored = connection.execute(
                _INSERT_APPOINTMENT_AND_ENTRY,
                {
                    "reservation_id": reservation_id,
                    "timeslot_id": hold.timeslot_id,
                    "doctor_id": hold.doctor_id,
                    "patient_id": patient_id,
                    "start_time": hold.start_time,
                    "end_time": hold.end_time,
                    "status": AppointmentStatus.PENDING.value,
                    "reason": reason or "",
                    "cancellation_notice_minutes": notice,
                    "actor_id": patient_id,
                    "history_timeslot_id": hold.timeslot_id,
                },
            ).one()
            booked = AppointmentView(
                id=stored.id,
                timeslot_id=hold.timeslot_id,
                doctor_id=hold.doctor_id,
                patient_id=patient_id,
                doctor_name=names.get(hold.doctor_id) or "",
                patient_name=names.get(patient_id) or "",
                start_time=hold.start_time,
                end_time=hold.end_time,
                status=AppointmentStatus.PENDING.value,
                reason=reason or "",
                cancellation_reason=None,
                created_at=stored.created_at,
                updated_at=stored.updated_at,
            )
            events.publish_booked(connection, booked, reservation_id)
            record.record(connection, booked)
    except BaseException as exc:
        acceptance.release_unused_hold(db, scheduling, timeslot_id, reservation_id, offered=offered)
        refused = reservations.refusal(exc)
        if refused is not None:
            raise refused from exc
        raise
    metrics.BOOKINGS.inc()
    if offered:
        metrics.WAITLIST_OFFERS.labels("accepted").inc()
    return booked


_APPOINTMENTS = Appointment.__table__
_USERS = User.__table__
_INSERT_APPOINTMENT = (
    insert(_APPOINTMENTS)
    .values(
        **{
            name: bindparam(name)
            for name in (
                "reservation_id",
                "timeslot_id",
                "doctor_id",
                "patient_id",
                "start_time",
                "end_time",
                "status",
                "reason",
                "cancellation_notice_minutes",
            )
        }  # fmt: skip
    )
    .returning(_APPOINTMENTS.c.id, _APPOINTMENTS.c.created_at, _APPOINTMENTS.c.updated_at)
)
# The appointment and its ``booked`` history entry in one statement (a data-modifying CTE).
_NEW_APPOINTMENT = _INSERT_APPOINTMENT.cte("new_appointment")
_BOOKED_ENTRY = (
    insert(AppointmentHistory.__table__)
    .from_select(
        history.INSERT_BOOKED_COLUMNS,
        select(
            _NEW_APPOINTMENT.c.id,
            bindparam("actor_id", type_=BigInteger),
            literal("patient"),
            literal(Action.BOOKED.value),
            literal(AppointmentStatus.PENDING.value),
            bindparam("history_timeslot_id", type_=BigInteger),
        ),
    )
    .cte("booked_entry")
)
_INSERT_APPOINTMENT_AND_ENTRY = select(
    _NEW_APPOINTMENT.c.id, _NEW_APPOINTMENT.c.created_at, _NEW_APPOINTMENT.c.updated_at
).add_cte(_BOOKED_ENTRY)
_LOCK_USERS = (
    select(_USERS.c.id, _USERS.c.is_active, _USERS.c.full_name)
    .where(_USERS.c.id.in_([bindparam("patient_id"), bindparam("doctor_id")]))
    .order_by(_USERS.c.id)
    .with_for_update(read=True)
)
_USER_PLACEHOLDERS = (
    pg_insert(_USERS)
    .values(
        [
            {
                "id": bindparam("patient_id"),
                "full_name": "",
                "role": "patient",
                "is_active": True,
                "revision": 0,
            },
            {
                "id": bindparam("doctor_id"),
                "full_name": "",
                "role": "doctor",
                "is_active": True,
                "revision": 0,
            },
        ]
    )
    .on_conflict_do_nothing(index_elements=[_USERS.c.id])
)


def _lock_users(connection: Connection, *, patient_id: int, doctor_id: int) -> dict[int, str]:
    """Refuse a booking whose patient or doctor booking already knows to be deactivated.

    Returns both users' names (empty when not known yet). FOR SHARE on both users' rows
    serialises this booking with a deactivation being applied (which locks the row FOR
    UPDATE): either the deactivation sees this appointment and cancels it, or this booking
    sees the deactivation and stops. A user booking has not heard of yet gets a placeholder
    row first (revision 0, so any identity event wins over it), or there would be no row to
    lock and the two could still cross. The doctor matters as much as the patient:
    scheduling may not have heard of the doctor's deactivation yet when it grants the hold.
    """
    ids = {"patient_id": patient_id, "doctor_id": doctor_id}
    rows = connection.execute(_LOCK_USERS, ids).all()
    if len(rows) < len({patient_id, doctor_id}):
        connection.execute(_USER_PLACEHOLDERS, ids)
        rows = connection.execute(_LOCK_USERS, ids).all()
    active = {row.id: row.is_active for row in rows}
    if active.get(patient_id) is False:
        raise AccountDeactivated("This account has been deactivated.")
    if active.get(doctor_id) is False:
        raise TimeslotRefused(
            404, "timeslot_not_found", "There is no such timeslot: its doctor is no longer available."
        )
    return {row.id: row.full_name for row in rows}
