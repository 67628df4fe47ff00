"""scheduling's own retention task, run by the service's retention job with the outbox's, the
inbox's and the Idempotency-Keys'.

- Cancelled reservations (``services/reservations.py``): remembered so that a ``booked`` event
  arriving after its ``cancelled`` (a retry, a dead letter replayed) cannot book a free timeslot
  for an appointment that no longer exists. One goes once its timeslot has ended (or was
  deleted), when nobody can book that time any more, and once it is as old as the inbox's
  memory of the events of that time (``INBOX_RETENTION_DAYS``).
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Interval, bindparam, exists, func, select

from chassis.db import Database
from chassis.messaging.retention import Task, purge_in_batches
from scheduling.models import CancelledReservation, Timeslot

_CANCELLED = CancelledReservation.__table__
_TIMESLOTS = Timeslot.__table__


def purge_cancelled_reservations(db: Database, older_than: timedelta) -> int:
    """Delete cancelled reservations remembered more than ``older_than`` ago whose timeslot has
    ended or is gone; how many went."""
    timeslot_ahead = exists(
        select(_TIMESLOTS.c.id).where(
            _TIMESLOTS.c.id == _CANCELLED.c.timeslot_id, _TIMESLOTS.c.end_time > func.now()
        )
    )
    old = _CANCELLED.c.cancelled_at < func.now() - bindparam("p_age", type_=Interval())
    condition = old & ~timeslot_ahead
    return purge_in_batches(db, _CANCELLED, _CANCELLED.c.reservation_id, condition, {"p_age": older_than})


def scheduling_retention_tasks(db: Database, *, inbox_days: float) -> dict[str, Task]:
    return {"cancelled reservations": lambda: purge_cancelled_reservations(db, timedelta(days=inbox_days))}
