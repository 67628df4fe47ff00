"""The waitlist worker: a start-up hook that expires offers and makes new ones every interval.

Safe with several replicas (``FOR UPDATE SKIP LOCKED`` on offers and openings) and across
restarts (every step starts from rows in the database).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import FastAPI

from booking.services.offers import expire_offers, offer_openings
from chassis.app import Hook
from chassis.db import Database
from chassis.periodic import running_every

log = logging.getLogger("booking.waitlist.worker")


def waitlist_worker_hook(db: Database, *, offer_minutes: float, interval: float) -> Hook:
    """A hook running the waitlist's passes in a background thread while the app runs."""

    @contextmanager
    def hook(app: FastAPI) -> Iterator[None]:
        scheduling = app.state.scheduling

        def one_pass() -> None:
            expire_offers(db, scheduling)
            offer_openings(db, scheduling, offer_minutes=offer_minutes)

        with running_every(interval, one_pass, name="booking-waitlist-worker", log=log):
            yield

    return hook
