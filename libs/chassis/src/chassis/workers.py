"""Background work a service polls for: a daemon thread running one step again and again.

A step does what is due (sends what the database says is due, sweeps what expired) and
returns how much it did: when it did something it runs again at once, else the thread waits
``interval`` seconds, or less when ``wake()`` is called. A failing step is logged and tried
again after the interval: the work stays in the database, nothing is lost. Every replica runs
its own; steps that claim rows (``FOR UPDATE SKIP LOCKED``) never do the same work twice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import FastAPI
from sqlalchemy import event
from sqlalchemy.orm import Session

from chassis.app import Hook
from chassis.db import Database

log = logging.getLogger("chassis.workers")

Step = Callable[[], int]


class PollingWorker:
    """Runs ``step`` in a daemon thread until ``stop()`` (the step in hand finishes first)."""

    def __init__(self, name: str, step: Step, *, interval: float) -> None:
        if interval <= 0:
            raise ValueError("a polling interval is positive")
        self.name = name
        self.step = step
        self.interval = interval
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def wake(self) -> None:
        """Run the step soon instead of after the rest of the interval."""
        self._wake.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                done = self.step()
            except Exception:
                log.exception("%s: a step failed; trying again in %.1fs", self.name, self.interval)
                done = 0
            if done and not self._stopping.is_set():
                continue
            self._wake.wait(self.interval)
            self._wake.clear()


def due_now(session: Session, work: str) -> None:
    """Say, inside a transaction, that it made ``work`` due: once it commits, the workers of
    this process registered for ``work`` (``wake_on_commit``) run at once, not at their next poll."""
    session.info.setdefault(_DUE, set()).add(work)


def wake_on_commit(db: Database, work: str, worker: PollingWorker) -> None:
    """Wake ``worker`` after each commit of ``db`` whose transaction called ``due_now(work)``.

    The wake-up stays in this process (other replicas find the work at their next poll), and
    a transaction that rolls back wakes no one."""

    def after_commit(session: Session) -> None:
        if work in session.info.get(_DUE, ()):
            worker.wake()

    event.listen(db.sessions, "after_commit", after_commit)
    # A session's next transaction starts with nothing due (once per session factory).
    if not event.contains(db.sessions, "after_begin", _forget_due):
        event.listen(db.sessions, "after_begin", _forget_due)


_DUE = "chassis.workers.due"


def _forget_due(session: Session, *_: Any) -> None:
    session.info.pop(_DUE, None)


def worker_hook(worker: PollingWorker, state_name: str, *, close: Callable[[], None] | None = None) -> Hook:
    """A hook for ``create_service_app(hooks=...)``: start ``worker`` with the app, stop it at
    shutdown (then ``close()``, e.g. to let work it handed to other threads finish); it is
    ``app.state.<state_name>`` meanwhile."""

    @contextmanager
    def run_worker(app: FastAPI) -> Iterator[PollingWorker]:
        setattr(app.state, state_name, worker)
        worker.start()
        try:
            yield worker
        finally:
            worker.stop()
            if close is not None:
                close()

    return run_worker
