"""Use cases of booking-service, one transaction each.

Booking follows docs/booking-protocol.md: hold the timeslot at scheduling (its
owner), then store the appointment and its ``booked`` event in one transaction;
if that fails, release the hold at once. Status changes lock the appointment's
row so two concurrent changes cannot both apply.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, bindparam, case, func, insert, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from booking import events
from booking.domain import (
    ACTIVE_STATUSES,
    AppointmentStatus,
    CancelledBy,
    check_cancellation,
    check_status_change,
    deactivation_reason,
)
from booking.errors import AccountDeactivated, AppointmentNotFound, TimeslotNotAvailable, TimeslotNotFound
from booking.models import ACTIVE_TIMESLOT_INDEX, Appointment, User
from booking.queries import AppointmentView, view_of
from booking.scheduling_client import SchedulingClient
from booking.waitlist import acceptance
from chassis.auth import Principal
from chassis.db import Database
from chassis.timezones import utcnow


@dataclass(frozen=True, slots=True)
class ReservationView:
    reservation_id: uuid.UUID
    appointment_id: int
    status: str


def book_appointment(
    db: Database,
    scheduling: SchedulingClient,
    *,
    patient_id: int,
    timeslot_id: int,
    reason: str | None,
) -> AppointmentView:
    """Book ``timeslot_id`` for ``patient_id``: a pending appointment that really holds the timeslot.

    The busiest write of the system, so plain prebuilt Core statements on one connection,
    four round trips after the hold: lock both users (their names come back with the lock),
    insert the appointment, insert its event together with the relay's wake-up, commit.
    """
    # The patient's own waitlist offer of this timeslot is held for them: booking converts it.
    hold, reservation_id, offered = acceptance.hold_for_booking(
        db, scheduling, patient_id=patient_id, timeslot_id=timeslot_id
    )
    try:
        with db.engine.begin() as connection:
            if offered:
                acceptance.accept_offer(connection, reservation_id)
            names = _lock_users(connection, patient_id=patient_id, doctor_id=hold.doctor_id)
            stored = connection.execute(
                _INSERT_APPOINTMENT,
                {
                    "reservation_id": reservation_id,
                    "timeslot_id": hold.timeslot_id,
                    "doctor_id": hold.doctor_id,
                    "patient_id": patient_id,
                    "start_time": hold.start_time,
                    "end_time": hold.end_time,
                    "status": AppointmentStatus.PENDING.value,
                    "reason": reason or "",
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
    except BaseException as exc:
        # The appointment was not stored, so nothing may stay held: free the timeslot now, not at
        # expiry. A standing offer keeps its hold (the patient may try again until it expires).
        if not offered or not acceptance.offer_is_open(db, reservation_id):
            scheduling.release(timeslot_id, reservation_id=reservation_id)
        if isinstance(exc, IntegrityError) and _violates(exc, ACTIVE_TIMESLOT_INDEX):
            raise TimeslotNotAvailable("This timeslot already has an active appointment.") from exc
        raise
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
            )
        }  # fmt: skip
    )
    .returning(_APPOINTMENTS.c.id, _APPOINTMENTS.c.created_at, _APPOINTMENTS.c.updated_at)
)
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


def get_appointment(session: Session, appointment_id: int, caller: Principal) -> AppointmentView:
    """One appointment, if ``caller`` may see it (its patient, its doctor, an admin)."""
    with session.begin():
        appointment = session.get(Appointment, appointment_id)
        if appointment is None or not _may_see(caller, appointment):
            raise _not_found(appointment_id)
        return view_of(session, appointment_id)


def change_status(
    session: Session,
    appointment_id: int,
    caller: Principal,
    *,
    status: AppointmentStatus,
    cancellation_reason: str | None,
) -> AppointmentView:
    """Move an appointment along the status machine (its doctor or an admin)."""
    with session.begin():
        appointment = _locked(session, appointment_id, caller)
        previous = AppointmentStatus(appointment.status)
        now = utcnow()
        check_status_change(previous, status, start_time=appointment.start_time, now=now)
        if status == AppointmentStatus.CANCELLED:
            _cancel(session, appointment, CancelledBy(caller.role), cancellation_reason, now)
        else:
            appointment.status = status
            appointment.updated_at = now
            events.publish_status_changed(session, appointment, previous)
        session.flush()
        return view_of(session, appointment_id)


def cancel_appointment(session: Session, appointment_id: int, caller: Principal) -> None:
    """Cancel an active appointment that has not started (its patient or an admin); the record stays."""
    with session.begin():
        appointment = _locked(session, appointment_id, caller)
        now = utcnow()
        check_cancellation(AppointmentStatus(appointment.status), start_time=appointment.start_time, now=now)
        _cancel(session, appointment, CancelledBy(caller.role), None, now)


def find_reservation(session: Session, reservation_id: uuid.UUID) -> ReservationView | None:
    """The appointment stored for a reservation, if any (scheduling's hold sweeper asks)."""
    with session.begin():
        row = session.execute(
            select(Appointment.id, Appointment.status).where(Appointment.reservation_id == reservation_id)
        ).first()
    if row is None:
        return None
    return ReservationView(reservation_id=reservation_id, appointment_id=row.id, status=row.status)


def remember_user(
    session: Session,
    user_id: int,
    *,
    revision: int,
    role: str,
    is_active: bool,
    full_name: str | None = None,
) -> bool:
    """Apply an identity event to the read model of users, in the caller's transaction.

    Out-of-order tolerant: an event older than what is known changes nothing,
    except that it fills in a name still unknown (``deactivated`` carries none).
    Returns whether the event is the newest known about the user.
    """
    known = session.scalar(select(User.revision).where(User.id == user_id).with_for_update())
    insert = pg_insert(User).values(
        id=user_id, full_name=full_name or "", role=role, is_active=is_active, revision=revision
    )
    newer = User.revision < insert.excluded.revision
    name_unknown = User.full_name == ""
    updates = {
        "role": case((newer, insert.excluded.role), else_=User.role),
        "is_active": case((newer, insert.excluded.is_active), else_=User.is_active),
        "revision": func.greatest(User.revision, insert.excluded.revision),
        "updated_at": func.now(),
    }
    if full_name:
        updates["full_name"] = case(
            (or_(newer, name_unknown), insert.excluded.full_name), else_=User.full_name
        )
    session.execute(
        insert.on_conflict_do_update(index_elements=[User.id], set_=updates, where=or_(newer, name_unknown))
    )
    return known is None or revision >= known


def cancel_appointments_of_deactivated_user(session: Session, user_id: int) -> int:
    """Cancel the user's future active appointments, as patient or doctor; in the caller's transaction."""
    now = utcnow()
    appointments = session.scalars(
        select(Appointment)
        .where(
            or_(Appointment.patient_id == user_id, Appointment.doctor_id == user_id),
            Appointment.status.in_(ACTIVE_STATUSES),
            Appointment.start_time > now,
        )
        .order_by(Appointment.id)
        .with_for_update()
    ).all()
    for appointment in appointments:
        reason = deactivation_reason(as_patient=appointment.patient_id == user_id)
        _cancel(session, appointment, CancelledBy.SYSTEM, reason, now)
    return len(appointments)


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
        raise TimeslotNotFound("There is no such timeslot: its doctor is no longer available.")
    return {row.id: row.full_name for row in rows}


def _cancel(
    session: Session, appointment: Appointment, by: CancelledBy, reason: str | None, now: datetime
) -> None:
    previous = AppointmentStatus(appointment.status)
    appointment.status = AppointmentStatus.CANCELLED
    appointment.cancelled_by = by
    appointment.cancellation_reason = reason
    appointment.updated_at = now
    events.publish_cancelled(session, appointment, previous, by)


def _locked(session: Session, appointment_id: int, caller: Principal) -> Appointment:
    appointment = session.scalar(
        select(Appointment).where(Appointment.id == appointment_id).with_for_update()
    )
    if appointment is None or not _may_see(caller, appointment):
        raise _not_found(appointment_id)
    return appointment


def _may_see(caller: Principal, appointment: Appointment) -> bool:
    if caller.role == "admin":
        return True
    if caller.role == "doctor":
        return appointment.doctor_id == caller.id
    return appointment.patient_id == caller.id


def _not_found(appointment_id: int) -> AppointmentNotFound:
    return AppointmentNotFound(f"There is no appointment {appointment_id}.")


def _violates(exc: IntegrityError, constraint: str) -> bool:
    diag = getattr(exc.orig, "diag", None)
    return getattr(diag, "constraint_name", None) == constraint
