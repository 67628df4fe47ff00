"""identity-service reads: a user by id (also on the event loop, for ``/me/``), the admin's list.

Statements only read; writes are in ``services``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, Select, bindparam, func, or_, select

from chassis.db import Database
from chassis.reads import FastReads
from identity.errors import UserNotFound
from identity.models import User

# The columns of a user that clients see (``UserRead``), by id: built once, the id bound at
# execution. ``GET /api/auth/me/`` runs it on every call, on ``FastReads`` (a fenced hot read:
# ``make bench`` row 2).
USERS = User.__table__
PUBLIC_COLUMNS = tuple(
    USERS.c[name] for name in ("id", "email", "full_name", "phone", "role", "is_active", "date_joined")
)
_USER_BY_ID = select(*PUBLIC_COLUMNS).where(USERS.c.id == bindparam("user_id"))


def get_user(db: Database, user_id: int) -> Row:
    """The user ``user_id``, active or not: its public columns, in one autocommit read."""
    with db.reading() as connection:
        user = connection.execute(_USER_BY_ID, {"user_id": user_id}).first()
    if user is None:
        raise UserNotFound(user_id)
    return user


async def read_user(reads: FastReads, user_id: int) -> dict[str, Any]:
    """``get_user`` on the event loop (the caller's own account, read on every ``/me/``)."""
    user = await reads.first(_USER_BY_ID, {"user_id": user_id})
    if user is None:
        raise UserNotFound(user_id)
    return user


def list_users(
    db: Database,
    *,
    role: str | None,
    search: str | None,
    is_active: bool | None,
    offset: int,
    limit: int,
) -> tuple[int, list[User]]:
    """How many users match the filters, and one page of them in id order."""
    count_statement, page_statement = user_list_statements(
        role=role, search=search, is_active=is_active, offset=offset, limit=limit
    )
    with db.sessions() as session:
        count = session.scalar(count_statement) or 0
        users = list(session.scalars(page_statement))
    return count, users


def user_list_statements(
    *, role: str | None, search: str | None, is_active: bool | None, offset: int, limit: int
) -> tuple[Select[tuple[int]], Select[tuple[User]]]:
    """The count and the page of ``list_users``. A search is ILIKE on the email or the name,
    with its own ``%``, ``_`` and ``\\`` taken literally (trigram indexes serve it)."""
    conditions = []
    if role is not None:
        conditions.append(User.role == role)
    if is_active is not None:
        conditions.append(User.is_active.is_(is_active))
    if search:
        escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern = f"%{escaped}%"
        conditions.append(
            or_(User.email.ilike(pattern, escape="\\"), User.full_name.ilike(pattern, escape="\\"))
        )
    count = select(func.count()).select_from(User).where(*conditions)
    page = select(User).where(*conditions).order_by(User.id).offset(offset).limit(limit)
    return count, page
