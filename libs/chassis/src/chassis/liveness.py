"""Whether a pooled database connection must be pinged before it is handed out.

``pool_pre_ping`` costs a round trip on every checkout, that is on every request. A
connection in use moments ago is alive unless the server closed it, and a server that
closes a connection (a restart, ``pg_terminate_backend``, a crash, a proxy cut) makes its
socket readable: so only a connection whose socket is readable, or that sat idle for
``PING_AFTER_IDLE_SECONDS`` (long enough for a silent network failure), needs a ping. Both
pools use this rule: the engine's (``chassis.db``) and the hot reads' (``chassis.reads``).
"""

from __future__ import annotations

import select
import time
from collections.abc import Callable

PING_AFTER_IDLE_SECONDS = 5.0


def needs_ping(used_at: float | None, fileno: Callable[[], int]) -> bool:
    """True for a connection never used, idle too long, or whose socket the server closed."""
    if used_at is None or time.monotonic() - used_at > PING_AFTER_IDLE_SECONDS:
        return True
    try:
        poller = select.poll()
        poller.register(fileno(), select.POLLIN)
        return bool(poller.poll(0))
    except Exception:  # a connection already known closed has no descriptor: ping it (and fail)
        return True
