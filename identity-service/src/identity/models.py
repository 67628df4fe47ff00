"""identity-service tables: users and their refresh tokens.

The rules the database can hold, it holds: one account per lower-cased email, a known
role, a non-blank name, and ``deactivated_at`` set exactly when the account is inactive.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from chassis.db import Base
from identity.domain import EMAIL_MAX_LENGTH, FULL_NAME_MAX_LENGTH, PHONE_MAX_LENGTH

# Channel of the NOTIFY sent by a trigger when a user's role or active flag changes (or
# the row goes): every replica listens and drops that user from its token-check cache.
USER_STATUS_CHANNEL = "identity_user_status"


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    email: Mapped[str] = mapped_column(String(EMAIL_MAX_LENGTH))
    password_hash: Mapped[str] = mapped_column(String(255))
    full_name: Mapped[str] = mapped_column(String(FULL_NAME_MAX_LENGTH))
    phone: Mapped[str | None] = mapped_column(String(PHONE_MAX_LENGTH))
    role: Mapped[str] = mapped_column(String(16))
    is_active: Mapped[bool] = mapped_column(server_default="true")
    date_joined: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )
    deactivated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When the role last changed (null: never). Access tokens issued up to then are refused,
    # whatever role they name: after admin -> patient -> admin an old admin token names the
    # current role again, yet stays refused. Set by ``update_user``; a role change that does not
    # set it (psql) gets the database's clock from a trigger (migration 0007).
    role_changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Grows by one with every change other services care about (name, role, active), so
    # consumers of identity.user.* events can ignore stale ones.
    revision: Mapped[int] = mapped_column(Integer, server_default="1")

    __table_args__ = (
        UniqueConstraint("email", name="uq_users_email"),
        CheckConstraint("email = lower(email)", name="email_lower_case"),
        CheckConstraint("role IN ('admin', 'doctor', 'patient')", name="role_known"),
        CheckConstraint("btrim(full_name) <> ''", name="full_name_not_blank"),
        CheckConstraint("is_active = (deactivated_at IS NULL)", name="deactivated_at_iff_inactive"),
        CheckConstraint("revision >= 1", name="revision_positive"),
        # /api/users/?search= is ILIKE '%term%' on the email or the name: trigram GIN indexes
        # serve it (as a BitmapOr) without reading every user.
        *(
            Index(
                f"ix_users_{column}_trgm",
                column,
                postgresql_using="gin",
                postgresql_ops={column: "gin_trgm_ops"},
            )
            for column in ("email", "full_name")
        ),
    )
    # Fetch server-side values (date_joined, updated_at) with RETURNING, so they are
    # readable after the session closes.
    __mapper_args__ = {"eager_defaults": True}


class LoginSession(Base):
    """A login: what its refresh tokens (one family) and access tokens (``sid``) belong to.

    It lives until ``expires_at`` (the absolute lifetime: refreshing does not extend it)
    unless it ends before (``ended_at``: logout, refresh-token reuse, a password change,
    a deactivation). An ended session's access tokens are refused at once.
    """

    __tablename__ = "sessions"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)  # the refresh-token family id
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    end_reason: Mapped[str | None] = mapped_column(String(32))

    __table_args__ = (
        CheckConstraint("expires_at > started_at", name="expires_after_started"),
        CheckConstraint("(ended_at IS NULL) = (end_reason IS NULL)", name="end_reason_iff_ended"),
        Index("ix_sessions_user_id", "user_id"),
    )


class RefreshToken(Base):
    """One refresh token. Tokens rotated from one login share a ``family_id`` (a session).

    A used token points to its successor (``replaced_by_id``); presenting a used token
    again is reuse, and revokes the family, except within the refresh grace period while the
    successor is unused: then it gets that same successor (``services/sessions.py``).
    """

    __tablename__ = "refresh_tokens"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    family_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    replaced_by_id: Mapped[int | None] = mapped_column(ForeignKey("refresh_tokens.id", ondelete="SET NULL"))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The successor, sealed with this token (security.seal_successor), for the refresh grace
    # period; cleared by the retention job once the period is over.
    successor_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)

    __table_args__ = (
        UniqueConstraint("token_hash", name="uq_refresh_tokens_token_hash"),
        CheckConstraint("octet_length(token_hash) = 32", name="token_hash_sha256"),
        CheckConstraint("expires_at > issued_at", name="expires_after_issued"),
        Index("ix_refresh_tokens_family_id", "family_id"),
        Index("ix_refresh_tokens_user_id", "user_id"),
    )


class LoginFailure(Base):
    """A failed login (or a wrong ``current_password``), counted for throttling (``adapters/throttle.py``).

    ``account_key`` is a SHA-256 of the lower-cased email, ``address`` the client's address (an
    IPv6 one as its /64). A login in progress is a row too until it succeeds, so concurrent
    guesses at one account are counted before their (slow) password checks finish.
    """

    __tablename__ = "login_failures"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    account_key: Mapped[bytes] = mapped_column(LargeBinary(32))
    address: Mapped[str] = mapped_column(String(64))
    failed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("clock_timestamp()")
    )

    __table_args__ = (
        Index("ix_login_failures_account_key", "account_key", "failed_at"),
        Index("ix_login_failures_address", "address", "failed_at"),
    )
