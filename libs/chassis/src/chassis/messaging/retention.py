"""Retention: old rows that nothing needs any more are deleted, periodically, in every service.

- ``outbox_events`` rows that were published ``OUTBOX_RETENTION_DAYS`` ago: the relay never
  looks at them again (they stay a while for inspection: what went out, when).
- ``processed_events`` (the inbox) rows older than ``INBOX_RETENTION_DAYS``. The inbox turns a
  redelivered event into a no-op; redeliveries come within minutes (a relay that crashed
  between the broker's confirm and its commit publishes again at once; retries take
  ``sum(EVENT_RETRY_DELAYS)``, 156 s by default), so days are plenty. Past the inbox, every
  handler is idempotent on its own (user events carry a ``revision`` and stale ones are
  ignored; booking's events are applied by reservation id, and cancelled reservations are
  remembered), so even a dead letter replayed after its inbox row is gone changes nothing
  that a newer event decided. The minimum is one day (settings refuse less).

A service adds its own tasks (identity: refresh tokens, login failures; booking: abandoned
reservations; scheduling: cancelled reservations of ended timeslots) to the same job, and may
use ``purge_in_batches`` for them.
Every replica runs the job; the deletes skip rows another replica is deleting at that moment.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from fastapi import FastAPI
from sqlalchemy import ColumnElement, Interval, Table, bindparam, delete, func, select

from chassis.app import Hook
from chassis.db import Database
from chassis.messaging.outbox import OutboxEvent, ProcessedEvent

log = logging.getLogger("chassis.messaging.retention")

Task = Callable[[], int]
"""Deletes what is due; returns how many rows went."""

BATCH_SIZE = 5000

_OUTBOX = OutboxEvent.__table__
_INBOX = ProcessedEvent.__table__


def purge_in_batches(
    db: Database,
    table: Table,
    key: ColumnElement[Any],
    condition: ColumnElement[bool],
    values: dict[str, Any],
    *,
    batch_size: int = BATCH_SIZE,
) -> int:
    """Delete the rows of ``table`` that meet ``condition`` (``values`` are its parameters), in
    short transactions of at most ``batch_size`` rows each: no long lock on a busy table, and rows
    another replica is deleting at that moment are skipped. How many went."""
    doomed = select(key).where(condition).limit(batch_size).with_for_update(skip_locked=True)
    statement = delete(table).where(key.in_(doomed.scalar_subquery()))
    total = 0
    while True:
        with db.engine.begin() as connection:
            deleted = connection.execute(statement, values).rowcount or 0
        total += deleted
        if deleted < batch_size:
            return total


def purge_published_events(db: Database, older_than: timedelta, *, batch_size: int = BATCH_SIZE) -> int:
    """Delete outbox rows published more than ``older_than`` ago (never an unpublished one)."""
    condition = _OUTBOX.c.published_at < func.now() - bindparam("p_age", type_=Interval())
    return purge_in_batches(
        db, _OUTBOX, _OUTBOX.c.id, condition, {"p_age": older_than}, batch_size=batch_size
    )


def purge_processed_events(db: Database, older_than: timedelta, *, batch_size: int = BATCH_SIZE) -> int:
    """Delete inbox rows of events processed more than ``older_than`` ago."""
    condition = _INBOX.c.processed_at < func.now() - bindparam("p_age", type_=Interval())
    return purge_in_batches(
        db, _INBOX, _INBOX.c.event_id, condition, {"p_age": older_than}, batch_size=batch_size
    )


def messaging_retention_tasks(db: Database, *, outbox_days: float, inbox_days: float) -> dict[str, Task]:
    """The outbox and inbox tasks of a service's retention job."""
    return {
        "published outbox events": lambda: purge_published_events(db, timedelta(days=outbox_days)),
        "processed events": lambda: purge_processed_events(db, timedelta(days=inbox_days)),
    }


class RetentionJob:
    """Runs ``tasks`` every ``interval`` seconds in a daemon thread (first run at start)."""

    def __init__(self, service: str, tasks: Mapping[str, Task], *, interval: float) -> None:
        self.service = service
        self.tasks = dict(tasks)
        self.interval = interval
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> dict[str, int]:
        """Run every task now; how many rows each deleted (a failing task is logged and skipped)."""
        deleted: dict[str, int] = {}
        for name, task in self.tasks.items():
            try:
                deleted[name] = task()
            except Exception:
                log.exception("%s retention: deleting %s failed", self.service, name)
                continue
            if deleted[name]:
                log.info("%s retention: deleted %d %s", self.service, deleted[name], name)
        return deleted

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name=f"{self.service}-retention", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stopping.is_set():
            self.run_once()
            self._stopping.wait(self.interval)


def retention_hook(
    service: str, tasks: Mapping[str, Task], *, interval: float, enabled: bool = True
) -> list[Hook]:
    """A hook for ``create_service_app(hooks=...)`` running ``tasks`` periodically (none if disabled).

    The running job is ``app.state.retention``.
    """
    if not enabled:
        return []

    @contextmanager
    def run_retention(app: FastAPI) -> Iterator[RetentionJob]:
        job = RetentionJob(service, tasks, interval=interval)
        app.state.retention = job
        job.start()
        try:
            yield job
        finally:
            job.stop()

    return [run_retention]


def service_retention_hooks(
    service: str, db: Database, settings: Any, extra_tasks: Mapping[str, Task] | None = None
) -> list[Hook]:
    """The retention job of a service: its outbox and inbox (``BrokerSettings``' ages) and
    ``extra_tasks`` of its own, every ``RETENTION_INTERVAL_SECONDS``, unless ``RETENTION_ENABLED``
    is false."""
    tasks = {
        **messaging_retention_tasks(
            db, outbox_days=settings.outbox_retention_days, inbox_days=settings.inbox_retention_days
        ),
        **(extra_tasks or {}),
    }
    return retention_hook(
        service, tasks, interval=settings.retention_interval_seconds, enabled=settings.retention_enabled
    )
