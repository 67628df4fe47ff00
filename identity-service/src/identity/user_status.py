"""Whether a token's user is still active, and their current role: cheap enough for every request.

The gateway asks identity about every request, so looking the user up must cost
(almost) nothing. ``UserStatuses`` keeps ``user id -> (active, role)`` in memory and
``UserStatusListener`` keeps it honest: a trigger on ``users`` NOTIFYs on a role or
active-flag change, every replica LISTENs, and the changed user is dropped from every
cache when the change commits. The cache is only trusted while the listener is
connected; otherwise each lookup is one primary-key query.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass

import psycopg
from sqlalchemy import select
from sqlalchemy.engine import Engine, make_url

from chassis.auth import InvalidToken, KeyLookup, Principal, TokenVerifier
from identity.models import USER_STATUS_CHANNEL, User

log = logging.getLogger("identity.user_status")


@dataclass(frozen=True, slots=True)
class UserStatus:
    is_active: bool
    role: str


class UserStatuses:
    """The current (active, role) of users, cached while invalidations are guaranteed."""

    def __init__(self, engine: Engine, *, ttl: float = 300.0, max_entries: int = 100_000) -> None:
        self._engine = engine
        self._ttl = ttl
        self._max_entries = max_entries
        self._entries: dict[int, tuple[UserStatus | None, float]] = {}
        self._lock = threading.Lock()
        # Bumped by every invalidation: a lookup that raced with one must not cache what it read.
        self._generation = 0
        self._trusted = False

    @property
    def trusted(self) -> bool:
        """Whether the cache is in use (a listener is connected and will report changes)."""
        return self._trusted

    def lookup(self, user_id: int) -> UserStatus | None:
        """The user's current status, or None if there is no such user."""
        now = time.monotonic()
        if self._trusted:
            entry = self._entries.get(user_id)
            if entry is not None and entry[1] > now:
                return entry[0]
        generation = self._generation
        status = self._load(user_id)
        with self._lock:
            if self._trusted and generation == self._generation:
                if len(self._entries) >= self._max_entries:
                    self._entries.pop(next(iter(self._entries)))  # the oldest entry
                self._entries[user_id] = (status, now + self._ttl)
        return status

    def is_cached(self, user_id: int) -> bool:
        """Whether a lookup of ``user_id`` would be answered from memory."""
        return self._trusted and user_id in self._entries

    def forget(self, user_id: int) -> None:
        """Drop one user's cached status (it changed)."""
        with self._lock:
            self._generation += 1
            self._entries.pop(user_id, None)

    def set_trusted(self, trusted: bool) -> None:
        """Start or stop using the cache; either way it starts empty, as changes may have been missed."""
        with self._lock:
            self._generation += 1
            self._entries.clear()
            self._trusted = trusted

    def _load(self, user_id: int) -> UserStatus | None:
        with self._engine.connect() as connection:
            row = connection.execute(select(User.is_active, User.role).where(User.id == user_id)).first()
        return None if row is None else UserStatus(is_active=row.is_active, role=row.role)


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


@dataclass(frozen=True, slots=True)
class SessionPrincipal(Principal):
    """A ``Principal`` that also knows its session (the refresh-token family of its login)."""

    session_id: uuid.UUID | None = None


def _session_id(claims: dict) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(claims["sid"]))
    except (KeyError, ValueError):
        return None


class ActiveUserTokenVerifier(TokenVerifier):
    """A ``TokenVerifier`` that also refuses tokens of deactivated or deleted users.

    The principal's role is the user's role now, not the one written in the token, so
    a role change applies at once.
    """

    def __init__(self, keys: KeyLookup, *, issuer: str, audience: str, statuses: UserStatuses) -> None:
        super().__init__(keys, issuer=issuer, audience=audience)
        self.statuses = statuses

    def principal(self, token: str) -> SessionPrincipal:
        claims = self.claims(token)
        user_id = int(claims["sub"])
        status = self.statuses.lookup(user_id)
        if status is None or not status.is_active:
            raise InvalidToken("the account is deactivated or no longer exists")
        return SessionPrincipal(id=user_id, role=status.role, session_id=_session_id(claims))
