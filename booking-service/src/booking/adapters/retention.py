"""booking's own retention task, run by the service's retention job with the outbox's, the inbox's
and the Idempotency-Keys'.

- Abandoned reservations (``services/reservations.py``), a day after booking answered that
  nothing was stored for them: the answer only has to outlive the transactions that could still
  try to commit under the reservation, which last seconds; a reservation id is never used for
  a new attempt (a retry draws a new one).
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Interval, bindparam, delete, func

from booking.models import AbandonedReservation
from chassis.db import Database
from chassis.messaging.retention import Task

ABANDONED_RETENTION = timedelta(days=1)
_ABANDONED = AbandonedReservation.__table__


def purge_abandoned_reservations(db: Database, older_than: timedelta = ABANDONED_RETENTION) -> int:
    """Delete abandoned reservations recorded more than ``older_than`` ago; how many went."""
    old = _ABANDONED.c.abandoned_at < func.now() - bindparam("p_age", type_=Interval())
    with db.engine.begin() as connection:
        return connection.execute(delete(_ABANDONED).where(old), {"p_age": older_than}).rowcount or 0


def booking_retention_tasks(db: Database) -> dict[str, Task]:
    return {"abandoned reservations": lambda: purge_abandoned_reservations(db)}
