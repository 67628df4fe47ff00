"""Graceful shutdown: on SIGTERM, leave the rotation first, then stop as uvicorn does.

uvicorn stops listening as soon as it gets SIGTERM, then waits for the requests in flight
(``--timeout-graceful-shutdown``) and runs the lifespan's shutdown (the outbox relay and the
consumer stop after the message in hand; unacked messages go back to the queue). But the
gateway and Kubernetes only learn that a server is gone at their next readiness check: until
then they keep sending it requests, which a closed port refuses (502). So a SIGTERM first
turns ``/health/ready`` to 503 (``draining``) while the process keeps serving everything, for
``SHUTDOWN_DRAIN_SECONDS`` (default 6: the gateway checks readiness every 5 s); only then does
uvicorn's own shutdown start. A second SIGTERM, or SIGINT (Ctrl-C), stops at once.

A rolling restart therefore costs no request, and a replica's death costs at most the
requests it was serving when it was SIGKILLed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from fastapi import FastAPI

log = logging.getLogger("chassis.shutdown")

DEFAULT_DRAIN_SECONDS = 6.0


def drain_seconds() -> float:
    """``SHUTDOWN_DRAIN_SECONDS`` from the environment (default 6; 0 turns draining off)."""
    raw = os.environ.get("SHUTDOWN_DRAIN_SECONDS", "").strip()
    if not raw:
        return DEFAULT_DRAIN_SECONDS
    try:
        seconds = float(raw)
    except ValueError:
        raise ValueError(f"SHUTDOWN_DRAIN_SECONDS must be a number of seconds, not {raw!r}") from None
    if seconds < 0:
        raise ValueError("SHUTDOWN_DRAIN_SECONDS must not be negative")
    return seconds


def is_draining(app: Any) -> bool:
    return bool(getattr(app.state, "draining", False))


@contextmanager
def drain_on_sigterm(app: FastAPI, seconds: float | None = None) -> Iterator[None]:
    """While the app runs (enter it in the lifespan): SIGTERM marks it draining, and the
    server's own SIGTERM handler (uvicorn's) runs ``seconds`` later.

    Only where the server handles SIGTERM in this thread (uvicorn's main thread); elsewhere
    (a test client's thread) it does nothing.
    """
    app.state.draining = False
    seconds = drain_seconds() if seconds is None else seconds
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    if not callable(previous) or seconds <= 0:
        yield
        return
    server_handler: Callable[[int, FrameType | None], Any] = previous
    loop = asyncio.get_running_loop()

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        if is_draining(app):
            log.info("second SIGTERM: shutting down now")
            server_handler(signum, frame)
            return
        app.state.draining = True
        log.info(
            "SIGTERM: not ready any more; serving for %.1fs more, then shutting down gracefully", seconds
        )
        loop.call_soon_threadsafe(loop.call_later, seconds, server_handler, signum, None)

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        if signal.getsignal(signal.SIGTERM) is on_sigterm:
            signal.signal(signal.SIGTERM, previous)
