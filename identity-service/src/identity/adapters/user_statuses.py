"""A token's user as they are now (active, role, ended sessions): cheap enough for every request.

The gateway asks identity about every request, so looking the user up must cost
(almost) nothing. ``UserStatuses`` keeps ``user id -> (active, role, when the role last
changed, recently ended sessions)`` in memory and ``UserStatusListener`` keeps it honest:
triggers on ``users`` (a role or active-flag change) and ``sessions`` (a session ended)
NOTIFY, every replica LISTENs, and the user is dropped from every cache when the change
commits. The cache is only trusted while the listener is connected; otherwise each lookup
is one primary-key query.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from fastapi.concurrency import run_in_threadpool
from sqlalchemy import bindparam, func, select
from sqlalchemy.engine import Engine

from chassis.reads import FastReads
from chassis.timezones import utcnow
from identity.models import LoginSession, User

log = logging.getLogger("identity.user_status")


@dataclass(frozen=True, slots=True)
class UserStatus:
    is_active: bool
    role: str
    # When the role last changed, in epoch seconds (``iat``'s scale); None: never.
    role_changed_at: float | None = None
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
        # The app's event-loop reads while it runs (``lookup_async`` uses them, else a thread): the
        # gateway's token check of every request, a fenced hot read (``make bench`` row 1).
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
        status = (
            None
            if row is None
            else _status(row["is_active"], row["role"], row["role_changed_at"], row["ended_sessions"])
        )
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
        return (
            None if row is None else _status(row.is_active, row.role, row.role_changed_at, row.ended_sessions)
        )


# Built once (the lookup of every token whose user is not cached); bound at execution.
_USERS = User.__table__
_SESSIONS = LoginSession.__table__
_RECENTLY_ENDED = (
    select(_SESSIONS.c.id)
    .where(_SESSIONS.c.user_id == _USERS.c.id, _SESSIONS.c.ended_at >= bindparam("ended_since"))
    .scalar_subquery()
)
_STATUS_BY_ID = select(
    _USERS.c.is_active,
    _USERS.c.role,
    _USERS.c.role_changed_at,
    func.array(_RECENTLY_ENDED).label("ended_sessions"),
).where(_USERS.c.id == bindparam("user_id"))


def _status(
    is_active: bool, role: str, role_changed_at: datetime | None, ended_sessions: list | None
) -> UserStatus:
    return UserStatus(
        is_active=is_active,
        role=role,
        role_changed_at=None if role_changed_at is None else role_changed_at.timestamp(),
        ended_sessions=frozenset(str(sid) for sid in ended_sessions or ()),
    )
