"""The hold sweeper: a start-up hook running ``sweep_expired_holds`` every few seconds.

Safe with several replicas: each hold is settled under ``FOR UPDATE SKIP LOCKED``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import FastAPI

from chassis.app import Hook
from chassis.db import Database
from chassis.periodic import running_every
from scheduling.adapters import metrics
from scheduling.adapters.booking_client import BookingClient
from scheduling.services.reservations import sweep_expired_holds

log = logging.getLogger("scheduling.sweeper")


def hold_sweeper_hook(db: Database, *, booking_url: str, timeout: float, interval: float) -> Hook:
    """A hook that runs the sweeper in a background thread while the app runs."""

    @contextmanager
    def hook(app: FastAPI) -> Iterator[None]:
        client = BookingClient(booking_url, timeout=timeout, credentials=app.state.trust.credentials)
        try:
            sweeping = running_every(
                interval,
                lambda: _sweep(db, client),
                name="scheduling-hold-sweeper",
                log=log,
                join_timeout=timeout + 5,
            )
            with sweeping:
                yield
        finally:
            client.close()

    return hook


def _sweep(db: Database, client: BookingClient) -> None:
    """One pass, counted: its time when it succeeds, a failure when it raises (then logged)."""
    try:
        sweep_expired_holds(db, client.reservation)
    except Exception:
        metrics.SWEEPER_FAILURES.inc()
        raise
    metrics.SWEEPER_LAST_PASS.set_to_current_time()
