"""The calendar feeds' tables: one feed per user, and the key its secrets derive from."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, DateTime, Index, LargeBinary, SmallInteger, String, func
from sqlalchemy.orm import Mapped, mapped_column

from chassis.db import Base


class CalendarFeed(Base):
    """A user's feed. Its URL's secret is HMAC(key, nonce): the row keeps the nonce and the secret's
    SHA-256, never the secret itself; rotating draws a new nonce, so the old URL finds nothing."""

    __tablename__ = "calendar_feeds"

    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    # Whose appointments the feed shows: the user's as patient, or as doctor.
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    nonce: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    secret_hash: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    rotated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )

    __table_args__ = (
        CheckConstraint("role IN ('doctor', 'patient')", name="role_known"),
        Index("uq_calendar_feeds_secret_hash", "secret_hash", unique=True),
    )


class CalendarFeedKey(Base):
    """The key feed secrets derive from when ``CALENDAR_FEED_KEY`` is not set (drawn on first use).

    Kept in the database only as the fallback of a deployment that sets no key; with the key
    set (as a secret file), a copy of the database alone cannot produce any feed URL.
    """

    __tablename__ = "calendar_feed_key"

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    key: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)

    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)
