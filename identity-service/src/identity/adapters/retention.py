"""identity's own retention tasks, run by the service's retention job with the outbox's and inbox's.

- Ended sessions and their refresh tokens: a session is over when it ended, reached its
  absolute lifetime, or its last refresh token expired; REFRESH_TOKEN_RETENTION_DAYS after
  that, the session row goes and its tokens with it (ON DELETE CASCADE). A live session keeps
  its used tokens, so presenting an old one of them is still detected as reuse; sessions have
  an absolute lifetime, so none lives forever.
- Sealed successors (the refresh grace period) once the grace period is over.
- Login failures older than the throttling window: nothing counts them any more.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Interval, bindparam, delete, func, select, update

from chassis.db import Database
from chassis.messaging.retention import BATCH_SIZE, Task
from identity.adapters.throttle import LoginThrottle
from identity.models import LoginSession, RefreshToken

TOKENS = RefreshToken.__table__
SESSIONS = LoginSession.__table__


def purge_ended_sessions(db: Database, older_than: timedelta, *, batch_size: int = BATCH_SIZE) -> int:
    """Delete sessions (their refresh tokens with them) that ended more than ``older_than`` ago;
    how many. A session is over when it ended (logout, reuse ...), reached its absolute
    lifetime, or when its last refresh token expired (nothing can refresh it any more)."""
    last_usable = (
        select(func.max(TOKENS.c.expires_at)).where(TOKENS.c.family_id == SESSIONS.c.id).scalar_subquery()
    )
    over_at = func.least(
        func.coalesce(SESSIONS.c.ended_at, SESSIONS.c.expires_at),
        SESSIONS.c.expires_at,
        func.coalesce(last_usable, SESSIONS.c.started_at),
    )
    over = (
        select(SESSIONS.c.id)
        .where(over_at < func.now() - bindparam("p_age", type_=Interval()))
        .limit(batch_size)
    )
    statement = delete(SESSIONS).where(SESSIONS.c.id.in_(over.scalar_subquery()))
    total = 0
    while True:
        with db.engine.begin() as connection:
            deleted = connection.execute(statement, {"p_age": older_than}).rowcount or 0
        total += deleted
        if deleted == 0:
            return total


def forget_sealed_successors(db: Database, grace: timedelta) -> int:
    """Drop the sealed successors of tokens rotated longer than ``grace`` ago; how many."""
    with db.engine.begin() as connection:
        result = connection.execute(
            update(TOKENS)
            .where(
                TOKENS.c.successor_sealed.is_not(None),
                TOKENS.c.used_at < func.now() - bindparam("p_grace", type_=Interval()),
            )
            .values(successor_sealed=None),
            {"p_grace": grace},
        )
    return result.rowcount or 0


def identity_retention_tasks(
    db: Database, throttle: LoginThrottle, *, refresh_token_days: float, refresh_grace_seconds: float
) -> dict[str, Task]:
    return {
        "refresh tokens of ended sessions": lambda: purge_ended_sessions(
            db, timedelta(days=refresh_token_days)
        ),
        "sealed refresh successors": lambda: forget_sealed_successors(
            db, timedelta(seconds=refresh_grace_seconds)
        ),
        "login failures": lambda: throttle.prune(db),
    }
