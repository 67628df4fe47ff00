"""Which access tokens identity has taken back, as a service hears it by events.

A token's claims are a snapshot; identity's state is the truth. identity's own check
(the gateway's ForwardAuth) reads that state directly. Every other service keeps this
small event-fed view, so a request that reaches it directly is judged the same way
within a second:

- ``identity.session.revoked``: every token of that session (``sid``) is refused
  (logout, refresh-token reuse, a password change ending the other sessions, a
  deactivation ending them all).
- ``identity.user.updated`` with ``role`` among its changes: the user's tokens issued
  up to the change and naming another role are refused (the user logs in again).
- ``identity.user.deactivated``: every token the user was issued up to then is refused.

The consumer writes a row per fact into ``token_revocations`` (in the transaction that
records the event in the inbox); each process polls that table (``RevocationPoller``),
keeps the last day of rows in memory (``TokenRevocations``), and the token verifier
asks it about every request: a dictionary lookup. Rows older than a day no longer
matter (no access token lives that long) and are deleted by the poller.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, DateTime, Identity, Index, String, bindparam, delete, insert, select, text
from sqlalchemy.orm import Mapped, Session, mapped_column

from chassis.auth import InvalidToken
from chassis.db import Base, Database
from chassis.errors import ProblemException
from chassis.messaging.consumer import Handler
from chassis.messaging.envelope import Envelope
from chassis.timezones import utcnow

log = logging.getLogger("chassis.revocations")

SESSION_REVOKED = "identity.session.revoked"
USER_UPDATED = "identity.user.updated"
USER_DEACTIVATED = "identity.user.deactivated"

# How long a revocation is kept: longer than any access token lives (ACCESS_TOKEN_TTL_SECONDS
# is at most a day, identity's settings enforce it).
RETENTION = timedelta(days=1)
# Each poll reads again the rows recorded in this last stretch of time, and since the start of
# the oldest transaction still open in the database: a row is recorded (its time taken) before
# its transaction commits, however long that waits, so a row committed after a newer one was
# read is read by a later poll, never skipped.
POLL_OVERLAP = timedelta(seconds=60)


class TokenRevocation(Base):
    """One fact that ends tokens: a session ended, or a user's tokens up to ``revoked_at``."""

    __tablename__ = "token_revocations"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger)
    # Set: every token of this session is refused. Null: the user's tokens issued up to
    # ``revoked_at`` are refused, all of them (deactivation) or those not naming ``role``.
    session_id: Mapped[uuid.UUID | None]
    role: Mapped[str | None] = mapped_column(String(16))
    revoked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    recorded_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("clock_timestamp()")
    )

    __table_args__ = (Index("ix_token_revocations_recorded_at", "recorded_at"),)


def create_revocations_table(op: Any) -> None:
    """Alembic: create ``token_revocations`` in a service's own migration."""
    import sqlalchemy as sa

    op.create_table(
        "token_revocations",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=True),
        sa.Column("role", sa.String(length=16), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "recorded_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("clock_timestamp()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name="pk_token_revocations"),
    )
    op.create_index("ix_token_revocations_recorded_at", "token_revocations", ["recorded_at"])


def drop_revocations_table(op: Any) -> None:
    """Alembic: drop what ``create_revocations_table`` created."""
    op.drop_index("ix_token_revocations_recorded_at", table_name="token_revocations")
    op.drop_table("token_revocations")


class TokenRevoked(InvalidToken):
    """The token was revoked; the message says why, in words a client may read."""


class TokenRevocations:
    """The revocations of the last day, in memory: ``check(claims)`` on every request."""

    def __init__(self) -> None:
        self._seen: dict[int, float] = {}  # row id -> revoked at: each row is applied once
        self._sessions: dict[str, float] = {}  # session id -> revoked at (epoch seconds)
        # user id -> [(revoked at, the role since then, or None: every token)]
        self._users: dict[int, list[tuple[float, str | None]]] = {}
        self._lock = threading.Lock()
        # False until the table was read once: until then no token is judged (503, not a guess).
        self.loaded = False

    def add(
        self, row_id: int, user_id: int, session_id: str | None, role: str | None, revoked_at: float
    ) -> None:
        """Remember one revocation (a row seen before is ignored)."""
        with self._lock:
            if row_id in self._seen:
                return
            self._seen[row_id] = revoked_at
            if session_id is not None:
                self._sessions[session_id] = revoked_at
            else:
                self._users.setdefault(user_id, []).append((revoked_at, role))

    def forget_before(self, cutoff: float) -> None:
        """Drop revocations older than ``cutoff`` (epoch seconds): no token they refuse is alive."""
        with self._lock:
            self._seen = {row_id: at for row_id, at in self._seen.items() if at >= cutoff}
            self._sessions = {sid: at for sid, at in self._sessions.items() if at >= cutoff}
            users = {}
            for user_id, entries in self._users.items():
                kept = [entry for entry in entries if entry[0] >= cutoff]
                if kept:
                    users[user_id] = kept
            self._users = users

    def check(self, claims: Mapping[str, Any]) -> None:
        """Raise ``TokenRevoked`` if these (verified) claims belong to a revoked token."""
        if not self.loaded:
            raise ProblemException(
                503,
                "The service cannot check tokens right now; please try again shortly.",
                code="auth_unavailable",
                headers={"Retry-After": "1"},
            )
        sid = claims.get("sid")
        if sid is not None and sid in self._sessions:
            raise TokenRevoked("the session has ended")
        entries = self._users.get(int(claims["sub"]))
        if not entries:
            return
        issued_at = claims["iat"]
        for revoked_at, role in entries:
            if issued_at <= revoked_at:
                if role is None:
                    raise TokenRevoked("the account was deactivated")
                if claims.get("role") != role:
                    raise TokenRevoked("the account's role has changed; log in again")


# --- recording, by the consumer -------------------------------------------------------


def _record(
    session: Session, *, user_id: int, revoked_at: datetime, session_id: Any = None, role: Any = None
) -> None:
    session.execute(
        insert(TokenRevocation).values(
            user_id=user_id, session_id=session_id, role=role, revoked_at=revoked_at
        )
    )


def record_session_revoked(session: Session, event: Envelope) -> None:
    """``identity.session.revoked``: every token of the session is refused."""
    data = event.data
    _record(
        session,
        user_id=int(data["user_id"]),
        session_id=uuid.UUID(str(data["session_id"])),
        revoked_at=datetime.fromisoformat(data["revoked_at"]),
    )


def record_user_change(session: Session, event: Envelope) -> None:
    """``identity.user.updated``/``deactivated``: a role change or a deactivation ends tokens."""
    data = event.data
    if event.event_type == USER_DEACTIVATED:
        _record(session, user_id=int(data["user_id"]), revoked_at=event.occurred_at)
    elif "role" in data.get("changed", ()):
        _record(session, user_id=int(data["user_id"]), role=str(data["role"]), revoked_at=event.occurred_at)


def with_token_revocations(handlers: Mapping[str, Handler]) -> dict[str, Handler]:
    """``handlers`` plus what keeps ``token_revocations`` current.

    For the user events a service already handles, the revocation is recorded first,
    in the same transaction, then the service's own handler runs.
    """
    combined: dict[str, Handler] = dict(handlers)
    combined[SESSION_REVOKED] = _chain(record_session_revoked, handlers.get(SESSION_REVOKED))
    for event_type in (USER_UPDATED, USER_DEACTIVATED):
        combined[event_type] = _chain(record_user_change, handlers.get(event_type))
    return combined


def _chain(first: Handler, then: Handler | None) -> Handler:
    if then is None:
        return first

    def both(session: Session, event: Envelope) -> None:
        first(session, event)
        then(session, event)

    both.__name__ = f"{first.__name__}_then_{then.__name__}"
    return both


# --- reading, by every process --------------------------------------------------------

_TABLE = TokenRevocation.__table__
_SINCE = (
    select(_TABLE.c.id, _TABLE.c.user_id, _TABLE.c.session_id, _TABLE.c.role, _TABLE.c.revoked_at)
    .where(_TABLE.c.recorded_at >= bindparam("since"))
    .order_by(_TABLE.c.id)
)
_PURGE = delete(_TABLE).where(_TABLE.c.recorded_at < bindparam("before"))
# Where the next poll starts: the overlap, or the start of the oldest transaction still open in
# this database (a revocation it writes is recorded after that), whichever is earlier; both by
# the database's clock, the one ``recorded_at`` is taken by. Read before the rows.
_NEXT_SINCE = text(
    "SELECT least(clock_timestamp() - :overlap,"
    " (SELECT min(xact_start) FROM pg_stat_activity WHERE datname = current_database()))"
)


class RevocationPoller:
    """Keeps a ``TokenRevocations`` current from ``token_revocations``, in a daemon thread.

    ``load()`` reads the last day before the app serves; the thread then reads what was
    recorded since its previous read (with an overlap) every ``interval`` seconds, and
    deletes rows older than a day about once a minute.
    """

    PURGE_EVERY = 60.0

    def __init__(self, db: Database, revocations: TokenRevocations, *, interval: float = 0.5) -> None:
        self.db = db
        self.revocations = revocations
        self.interval = interval
        self._since = utcnow() - RETENTION
        self._purged_at = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="token-revocations", daemon=True)

    def load(self) -> None:
        """Read every revocation recorded since the last read (overlapping it)."""
        with self.db.reading() as connection:
            next_since = connection.scalar(_NEXT_SINCE, {"overlap": POLL_OVERLAP})
            rows = connection.execute(_SINCE, {"since": self._since}).all()
        for row in rows:
            self.revocations.add(
                row.id,
                row.user_id,
                None if row.session_id is None else str(row.session_id),
                row.role,
                row.revoked_at.timestamp(),
            )
        self._since = next_since
        self.revocations.loaded = True

    @property
    def loaded(self) -> bool:
        return self.revocations.loaded

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.load()
                if time.monotonic() - self._purged_at >= self.PURGE_EVERY:
                    self._purge()
            except Exception as exc:  # the database is down: keep what we know, try again
                log.warning("could not read token revocations: %s", exc.__class__.__name__)

    def _purge(self) -> None:
        cutoff = utcnow() - RETENTION
        with self.db.transaction() as session:
            session.execute(_PURGE, {"before": cutoff})
        self.revocations.forget_before(cutoff.timestamp())
        self._purged_at = time.monotonic()
