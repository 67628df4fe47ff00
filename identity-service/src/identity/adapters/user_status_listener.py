"""The LISTEN thread that keeps ``UserStatuses`` honest: triggers on ``users`` and ``sessions``
NOTIFY, every replica LISTENs, and a changed user is dropped from the cache when the change
commits. While it is not connected the cache is not trusted (each lookup reads the database).
"""

from __future__ import annotations

import logging
import threading
import time

import psycopg
from sqlalchemy.engine import make_url

from identity.adapters.user_statuses import UserStatuses
from identity.models import USER_STATUS_CHANNEL

log = logging.getLogger("identity.user_status")


class UserStatusListener:
    """A thread that LISTENs for user status changes and evicts them from ``UserStatuses``.

    It reconnects with backoff when the connection drops; meanwhile the cache is not
    trusted and lookups go to the database.
    """

    POLL_SECONDS = 0.25
    PROBE_SECONDS = 15.0
    MAX_BACKOFF_SECONDS = 10.0

    def __init__(self, statuses: UserStatuses, database_url: str) -> None:
        self.statuses = statuses
        self.conninfo = make_url(database_url).set(drivername="postgresql").render_as_string(False)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="user-status-listener", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            try:
                self._listen()
                backoff = 0.5
            except (psycopg.Error, OSError) as exc:
                log.warning("user status listener disconnected (%s); retrying in %.1f s", exc, backoff)
            finally:
                self.statuses.set_trusted(False)
            self._stop.wait(backoff)
            backoff = min(backoff * 2, self.MAX_BACKOFF_SECONDS)

    def _listen(self) -> None:
        with psycopg.connect(
            self.conninfo,
            autocommit=True,
            connect_timeout=5,
            application_name="identity-user-status-listener",
            # Notice a silently dead peer within about a minute even without probes.
            keepalives=1,
            keepalives_idle=30,
            keepalives_interval=10,
            keepalives_count=3,
        ) as connection:
            connection.execute(f"LISTEN {USER_STATUS_CHANNEL}")
            # Only now may the cache be used: from here on, every change reaches us.
            self.statuses.set_trusted(True)
            log.info("listening for user status changes")
            probed_at = time.monotonic()
            while not self._stop.is_set():
                for notification in connection.notifies(timeout=self.POLL_SECONDS):
                    self._evict(notification.payload)
                if time.monotonic() - probed_at >= self.PROBE_SECONDS:
                    connection.execute("SELECT 1")
                    probed_at = time.monotonic()

    def _evict(self, payload: str) -> None:
        try:
            self.statuses.forget(int(payload))
        except ValueError:
            log.warning("ignored a malformed user status notification %r", payload)
            self.statuses.set_trusted(True)  # clears everything: the safe answer to the unknown
