"""The hold sweeper: a start-up hook running ``sweep_expired_holds`` every few seconds.

Safe with several replicas: each hold is settled under ``FOR UPDATE SKIP LOCKED``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import FastAPI

from chassis.app import Hook
from chassis.db import Database
from scheduling.adapters.booking_client import BookingClient
from scheduling.services.reservations import sweep_expired_holds

log = logging.getLogger("scheduling.sweeper")


def hold_sweeper_hook(db: Database, *, booking_url: str, timeout: float, interval: float) -> Hook:
    """A hook that runs the sweeper in a background thread while the app runs."""

    @contextmanager
    def hook(app: FastAPI) -> Iterator[None]:
        client = BookingClient(booking_url, timeout=timeout, credentials=app.state.trust.credentials)
        stop = threading.Event()

        def run() -> None:
            while not stop.is_set():
                try:
                    sweep_expired_holds(db, client.reservation)
                except Exception:  # a bad pass (database down ...) must not end the sweeper
                    log.exception("hold sweep failed; retrying in %ss", interval)
                stop.wait(interval)

        thread = threading.Thread(target=run, name="scheduling-hold-sweeper", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=timeout + 5)
            client.close()

    return hook
