"""notification's own retention tasks, run by the service's retention job with the outbox's and
the inbox's (``chassis.messaging.retention``), every ``RETENTION_INTERVAL_SECONDS``.

- Mails nothing sends again (``sent``, ``skipped``, ``failed``, ``in_doubt``) and webhook
  deliveries likewise (``delivered``, ``failed``), written ``NOTIFICATION_RETENTION_DAYS`` ago:
  until then they are the delivery log admins read (and redeliver from) and what keeps an event
  delivered again after the inbox forgot it (``INBOX_RETENTION_DAYS``, shorter: Settings check
  it) from being queued twice. Pending and claimed rows always stay.
- The local copy of appointments that ended that long ago. Reminders look only at appointments
  ahead; a mail about one that is over is skipped (its own context says so); webhook bodies are
  built from the event. An event about such an appointment arriving later still (a status set
  months after) writes the row again from its facts, and its body's ``created_at`` is then that
  event's time: the booking's time is forgotten with the row.

Each deletes in batches (``purge_in_batches``) through a partial or plain index on its age
(migration 0002), so no batch reads the whole table.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, Interval, and_, bindparam, func

from chassis.db import Database
from chassis.messaging.retention import Task, purge_in_batches
from notification.models import DELIVERY_FINISHED, MAIL_FINISHED, Appointment, Mail, WebhookDelivery

_MAILS = Mail.__table__
_DELIVERIES = WebhookDelivery.__table__
_APPOINTMENTS = Appointment.__table__


def _older_than() -> ColumnElement[Any]:
    return func.now() - bindparam("p_age", type_=Interval())


def purge_finished_mails(db: Database, older_than: timedelta) -> int:
    """Delete mails in a final state written more than ``older_than`` ago; how many went."""
    # The index's own predicate, as written there: the planner sees that the index serves it.
    condition = and_(MAIL_FINISHED, _MAILS.c.created_at < _older_than())
    return purge_in_batches(db, _MAILS, _MAILS.c.id, condition, {"p_age": older_than})


def purge_finished_deliveries(db: Database, older_than: timedelta) -> int:
    """Delete webhook deliveries in a final state written more than ``older_than`` ago."""
    condition = and_(DELIVERY_FINISHED, _DELIVERIES.c.created_at < _older_than())
    return purge_in_batches(db, _DELIVERIES, _DELIVERIES.c.id, condition, {"p_age": older_than})


def purge_ended_appointments(db: Database, older_than: timedelta) -> int:
    """Delete the local copy of appointments that ended more than ``older_than`` ago."""
    condition = _APPOINTMENTS.c.end_time < _older_than()
    return purge_in_batches(db, _APPOINTMENTS, _APPOINTMENTS.c.id, condition, {"p_age": older_than})


def notification_retention_tasks(db: Database, *, days: float) -> dict[str, Task]:
    age = timedelta(days=days)
    return {
        "finished mails": lambda: purge_finished_mails(db, age),
        "finished webhook deliveries": lambda: purge_finished_deliveries(db, age),
        "ended appointments": lambda: purge_ended_appointments(db, age),
    }
