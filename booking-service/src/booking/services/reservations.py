"""What became of a reservation, as scheduling's hold sweeper asks: an answer that stays true.

The sweeper frees an expired hold when booking answers that no appointment was stored for its
reservation. A booking, reschedule or waitlist acceptance still storing one under that
reservation must then never commit, or its appointment would keep a timeslot that scheduling
has just freed for others. So the answer "none" is recorded (``abandoned_reservations``) under
an exclusive advisory lock of the reservation, and a deferred trigger (migration 0006) takes
the same lock, shared, when a transaction that gives an appointment a reservation commits, and
refuses the commit if the reservation was abandoned. Either the lookup waits for that commit
and finds the appointment, or the commit finds the answer: ``refusal`` turns it into
``HoldExpired`` (503, nothing stored; the client may try again).
"""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from booking.domain import AppointmentStatus, takes_timeslot
from booking.errors import HoldExpired, TimeslotRefused
from booking.models import ACTIVE_TIMESLOT_INDEX, AbandonedReservation, Appointment
from booking.queries import ReservationView
from chassis.errors import DomainError

# The advisory lock space of reservations, and the constraint name the trigger raises with (both
# written in migration 0006 too).
RESERVATION_LOCKS = 7301
NOT_ABANDONED = "ck_appointments_reservation_not_abandoned"
TAKEN = "This timeslot already has an active appointment."


def settle_reservation(session: Session, reservation_id: uuid.UUID) -> ReservationView | None:
    """The appointment stored for ``reservation_id``; or None, and then none ever will be."""
    with session.begin():
        # Waits for a transaction committing an appointment under this reservation right now.
        session.execute(
            select(func.pg_advisory_xact_lock(RESERVATION_LOCKS, func.hashtext(str(reservation_id))))
        )
        row = session.execute(
            select(Appointment.id, Appointment.status).where(Appointment.reservation_id == reservation_id)
        ).first()
        if row is None:
            session.execute(
                insert(AbandonedReservation)
                .values(reservation_id=reservation_id)
                .on_conflict_do_nothing(index_elements=[AbandonedReservation.reservation_id])
            )
            return None
    status = AppointmentStatus(row.status)
    return ReservationView(reservation_id, row.id, status, takes_timeslot(status))


def refusal(exc: BaseException) -> DomainError | None:
    """The domain error of a storing transaction the database refused for a known reason, if any:
    the timeslot already has an active appointment (409), or the hold was given up (503)."""
    if not isinstance(exc, IntegrityError):
        return None
    constraint = getattr(getattr(exc.orig, "diag", None), "constraint_name", None)
    if constraint == ACTIVE_TIMESLOT_INDEX:
        return TimeslotRefused(409, "timeslot_not_available", TAKEN)
    if constraint == NOT_ABANDONED:
        return HoldExpired(
            "Storing the appointment took longer than its hold on the timeslot lasted, and the hold "
            "was given up: nothing was booked or changed. Please try again."
        )
    return None
