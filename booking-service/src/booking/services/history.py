"""Appointment history: one append-only entry per change, in the transaction of the change.

Every path that changes an appointment calls ``record`` (status changes, cancellations by
anyone, reschedules, the cascade of a deactivated account; booking writes its entry in the
statement that stores the appointment). ``queries.appointment_history`` reads them back.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from sqlalchemy import insert

from booking.models import AppointmentHistory
from chassis.auth import Principal

SYSTEM = "system"


class Action(StrEnum):
    BOOKED = "booked"
    STATUS_CHANGED = "status_changed"
    RESCHEDULED = "rescheduled"
    CANCELLED = "cancelled"


_HISTORY = AppointmentHistory.__table__
# Booking writes its entry in the statement that inserts the appointment (one round trip).
INSERT_BOOKED_COLUMNS = ("appointment_id", "actor_id", "actor_role", "action", "to_status", "to_timeslot_id")


def record(
    session: Any,
    appointment_id: int,
    *,
    actor: Principal | None,
    action: Action,
    from_status: str | None = None,
    to_status: str | None = None,
    from_timeslot_id: int | None = None,
    to_timeslot_id: int | None = None,
    reason: str | None = None,
) -> None:
    """Append one entry, in the caller's transaction (``actor`` None: the system did it)."""
    session.execute(
        insert(_HISTORY).values(
            appointment_id=appointment_id,
            actor_id=None if actor is None else actor.id,
            actor_role=SYSTEM if actor is None else actor.role,
            action=action.value,
            from_status=None if from_status is None else str(from_status),
            to_status=None if to_status is None else str(to_status),
            from_timeslot_id=from_timeslot_id,
            to_timeslot_id=to_timeslot_id,
            reason=reason,
        )
    )
