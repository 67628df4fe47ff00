"""A token's user as they are now (active, role, ended sessions): cheap enough for every request.

The gateway asks identity about every request, so looking the user up must cost
(almost) nothing. ``UserStatuses`` keeps ``user id -> (active, role, recently ended
sessions)`` in memory and ``UserStatusListener`` keeps it honest: triggers on ``users``
(a role or active-flag change) and ``sessions`` (a session ended) NOTIFY, every replica
LISTENs, and the user is dropped from every cache when the change commits. The cache
is only trusted while the listener is connected; otherwise each lookup is one
primary-key query.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

import psycopg
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import bindparam, func, select
from sqlalchemy.engine import Engine, make_url

from chassis.auth import InvalidToken, KeyLookup, Principal, TokenVerifier
from chassis.reads import FastReads
from chassis.timezones import utcnow
from identity.models import USER_STATUS_CHANNEL, LoginSession, User

log = logging.getLogger("identity.user_status")


@dataclass(frozen=True, slots=True)
class UserStatus:
    is_active: bool
    role: str
    # The user's sessions that ended recently enough for their access tokens to be unexpired.
    ended_sessions: frozenset[str] = frozenset()


class UserStatuses:
    """The current (active, role) of users, cached while invalidations are guaranteed."""

    def __init__(
        self,
        engine: Engine,
        *,
        ttl: float = 300.0,
        max_entries: int = 100_000,
        access_token_ttl: float = 900.0,
    ) -> None:
        self._engine = engine
        self._ttl = ttl
        self._max_entries = max_entries
        # A session that ended longer ago than this has no unexpired access token left.
        self._ended_window = timedelta(seconds=access_token_ttl + 60)
        # user id -> the UserStatus, and when the entry expires; None for no such user.
        self._entries: dict[int, tuple[UserStatus | None, float]] = {}
        self._lock = threading.Lock()
        # Bumped by every invalidation: a lookup that raced with one must not cache what it read.
        self._generation = 0
        self._trusted = False
        # The app's event-loop reads while it runs (``lookup_async`` uses them, else a thread).
        self.reads: FastReads | None = None

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
        self._remember(user_id, status, generation, now)
        return status

    async def lookup_async(self, user_id: int) -> UserStatus | None:
        """``lookup`` for the event loop: a miss is read on the loop (``reads``), else in a thread."""
        hit, status = self.cached(user_id)
        if hit:
            return status
        if self.reads is None:
            return await run_in_threadpool(self.lookup, user_id)
        now = time.monotonic()
        generation = self._generation
        row = await self.reads.first(_STATUS_BY_ID, self._parameters(user_id))
        status = None if row is None else _status(row["is_active"], row["role"], row["ended_sessions"])
        self._remember(user_id, status, generation, now)
        return status

    def _remember(self, user_id: int, status: UserStatus | None, generation: int, now: float) -> None:
        with self._lock:
            if self._trusted and generation == self._generation:
                if len(self._entries) >= self._max_entries:
                    self._entries.pop(next(iter(self._entries)))  # the oldest entry
                self._entries[user_id] = (status, now + self._ttl)

    def cached(self, user_id: int) -> tuple[bool, UserStatus | None]:
        """``(True, status)`` when the cache can answer without the database, else ``(False, None)``."""
        if self._trusted:
            entry = self._entries.get(user_id)
            if entry is not None and entry[1] > time.monotonic():
                return True, entry[0]
        return False, None

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

    def _parameters(self, user_id: int) -> dict:
        return {"user_id": user_id, "ended_since": utcnow() - self._ended_window}

    def _load(self, user_id: int) -> UserStatus | None:
        with self._engine.connect() as connection:
            row = connection.execute(_STATUS_BY_ID, self._parameters(user_id)).first()
        return None if row is None else _status(row.is_active, row.role, row.ended_sessions)


# Built once (the lookup of every token whose user is not cached); bound at execution.
_USERS = User.__table__
_SESSIONS = LoginSession.__table__
_RECENTLY_ENDED = (
    select(_SESSIONS.c.id)
    .where(_SESSIONS.c.user_id == _USERS.c.id, _SESSIONS.c.ended_at >= bindparam("ended_since"))
    .scalar_subquery()
)
_STATUS_BY_ID = select(
    _USERS.c.is_active, _USERS.c.role, func.array(_RECENTLY_ENDED).label("ended_sessions")
).where(_USERS.c.id == bindparam("user_id"))


def _status(is_active: bool, role: str, ended_sessions: list | None) -> UserStatus:
    return UserStatus(
        is_active=is_active, role=role, ended_sessions=frozenset(str(sid) for sid in ended_sessions or ())
    )


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
    """A ``TokenVerifier`` judging tokens on identity's current state: it also refuses tokens of
    deactivated or deleted users, of ended sessions, and those naming a role the user no
    longer has (a role change applies at once; the user logs in or refreshes for a new token).
    """

    def __init__(self, keys: KeyLookup, *, issuer: str, audience: str, statuses: UserStatuses) -> None:
        super().__init__(keys, issuer=issuer, audience=audience)
        self.statuses = statuses

    def principal(self, token: str) -> SessionPrincipal:
        claims = self.claims(token)
        return self._principal(claims, self.statuses.lookup(int(claims["sub"])))

    async def principal_async(self, token: str) -> SessionPrincipal:
        """The gateway's check of every request: answered in place from memory when the user's
        status is cached (the signature check is CPU work), from the database on the event loop
        otherwise."""
        claims = self.claims(token)  # identity's own key ring: never any I/O
        return self._principal(claims, await self.statuses.lookup_async(int(claims["sub"])))

    @staticmethod
    def _principal(claims: dict, status: UserStatus | None) -> SessionPrincipal:
        if status is None or not status.is_active:
            raise InvalidToken("the account is deactivated or no longer exists")
        if claims["role"] != status.role:
            raise InvalidToken("the account's role has changed; log in again")
        if claims.get("sid") in status.ended_sessions:
            raise InvalidToken("the session has ended")
        return SessionPrincipal(id=int(claims["sub"]), role=status.role, session_id=_session_id(claims))
