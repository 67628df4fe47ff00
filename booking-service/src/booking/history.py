"""Appointment history: one append-only entry per change, in the transaction of the change.

Every path that changes an appointment calls ``record`` (booking, status changes,
cancellations by anyone, reschedules, the cascade of a deactivated account); the history
route reads the entries back, oldest first, for whoever may see the appointment.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import bindparam, insert, select
from sqlalchemy.orm import Session

from booking.models import Appointment, AppointmentHistory
from chassis.auth import Principal

SYSTEM = "system"


class Action(StrEnum):
    BOOKED = "booked"
    STATUS_CHANGED = "status_changed"
    RESCHEDULED = "rescheduled"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    at: datetime
    actor_id: int | None
    actor_role: str
    action: str
    from_status: str | None
    to_status: str | None
    from_timeslot_id: int | None
    to_timeslot_id: int | None
    reason: str | None


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


_ENTRIES = (
    select(
        _HISTORY.c.at,
        _HISTORY.c.actor_id,
        _HISTORY.c.actor_role,
        _HISTORY.c.action,
        _HISTORY.c.from_status,
        _HISTORY.c.to_status,
        _HISTORY.c.from_timeslot_id,
        _HISTORY.c.to_timeslot_id,
        _HISTORY.c.reason,
    )
    .where(_HISTORY.c.appointment_id == bindparam("appointment_id"))
    .order_by(_HISTORY.c.id)
)


def entries(session: Session, appointment: Appointment) -> list[HistoryEntry]:
    """Every entry of ``appointment``, oldest first."""
    rows = session.execute(_ENTRIES, {"appointment_id": appointment.id}).all()
    return [HistoryEntry(**row._mapping) for row in rows]
