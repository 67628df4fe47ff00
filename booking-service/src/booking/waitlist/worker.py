"""The waitlist worker: a start-up hook that expires offers and makes new ones every interval.

Safe with several replicas (``FOR UPDATE SKIP LOCKED`` on offers and openings) and across
restarts (every step starts from rows in the database).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import FastAPI

from booking.waitlist.offers import expire_offers, offer_openings
from chassis.app import Hook
from chassis.db import Database

log = logging.getLogger("booking.waitlist.worker")


def waitlist_worker_hook(db: Database, *, offer_minutes: float, interval: float) -> Hook:
    """A hook running the waitlist's passes in a background thread while the app runs."""

    @contextmanager
    def hook(app: FastAPI) -> Iterator[None]:
        scheduling = app.state.scheduling
        stop = threading.Event()

        def run() -> None:
            while not stop.is_set():
                try:
                    expire_offers(db, scheduling)
                    offer_openings(db, scheduling, offer_minutes=offer_minutes)
                except Exception:  # a bad pass (database down ...) must not end the worker
                    log.exception("waitlist pass failed; retrying in %ss", interval)
                stop.wait(interval)

        thread = threading.Thread(target=run, name="booking-waitlist-worker", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=30)

    return hook
