"""notification-service tables: what it knows of users and appointments (fed by events), the
webhook subscriptions, and every delivery and mail as a row before it is sent."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from chassis.db import Base
from chassis.revocations import TokenRevocation  # noqa: F401  (its table is this service's too)
from notification.domain import DESCRIPTION_MAX_LENGTH, RESPONSE_EXCERPT_LENGTH, URL_MAX_LENGTH

__all__ = ["Appointment", "Base", "Mail", "User", "WebhookDelivery", "WebhookSubscription"]

PENDING = text("status = 'pending'")
# The rows the retention job deletes once they are NOTIFICATION_RETENTION_DAYS old
# (adapters/retention.py): those nothing will send again.
DELIVERY_FINISHED = text("status IN ('delivered', 'failed')")
MAIL_FINISHED = text("status IN ('sent', 'skipped', 'failed', 'in_doubt')")


class User(Base):
    """A user as identity's events describe it: whom to write to, and by what name."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    # Null until an event carrying it arrives (events published before notification-service
    # existed had none).
    email: Mapped[str | None] = mapped_column(String(254))
    full_name: Mapped[str] = mapped_column(String(150), default="")
    role: Mapped[str] = mapped_column(String(16))
    is_active: Mapped[bool] = mapped_column(Boolean)
    # identity's revision of the user: older events are ignored.
    revision: Mapped[int] = mapped_column(BigInteger)


class Appointment(Base):
    """An appointment as booking's events describe it: enough for reminders and payloads."""

    __tablename__ = "appointments"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    timeslot_id: Mapped[int] = mapped_column(BigInteger)
    doctor_id: Mapped[int] = mapped_column(BigInteger)
    patient_id: Mapped[int] = mapped_column(BigInteger)
    start_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    end_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16))
    cancellation_reason: Mapped[str | None] = mapped_column(Text)
    # When it was booked, when it got its current start time (reminders judge by it) and the
    # time of the newest event applied (an older one arriving late changes nothing).
    booked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    scheduled_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        # The reminder sweep: active appointments by start time.
        Index(
            "ix_appointments_active_start_time",
            "start_time",
            postgresql_where=text("status IN ('pending', 'confirmed')"),
        ),
        # The retention job: appointments that ended long ago.
        Index("ix_appointments_end_time", "end_time"),
    )


class WebhookSubscription(Base):
    __tablename__ = "webhook_subscriptions"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    url: Mapped[str] = mapped_column(String(URL_MAX_LENGTH))
    event_types: Mapped[list[str]] = mapped_column(ARRAY(String(32)))
    description: Mapped[str] = mapped_column(String(DESCRIPTION_MAX_LENGTH), default="")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    secret: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (CheckConstraint("cardinality(event_types) >= 1", name="event_types_not_empty"),)


class WebhookDelivery(Base):
    """One event for one subscription: its body is fixed, its attempts are counted here."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    subscription_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("webhook_subscriptions.id", ondelete="CASCADE")
    )
    event_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    event_type: Mapped[str] = mapped_column(String(32))
    # The webhook-id header: the same on every attempt, so receivers can drop repeats.
    webhook_id: Mapped[str] = mapped_column(String(64), unique=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Failed attempts since the delivery was (re)queued: the retry schedule's position.
    failures: Mapped[int] = mapped_column(Integer, default=0)
    # When it is due; None: never by itself (delivered, failed, or pending while its subscription
    # is paused: resuming makes it due, so the workers' claim never walks paused rows).
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(300))
    response_excerpt: Mapped[str | None] = mapped_column(String(RESPONSE_EXCERPT_LENGTH))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        CheckConstraint("status IN ('pending', 'delivered', 'failed')", name="status_known"),
        UniqueConstraint("subscription_id", "event_id", name="uq_webhook_deliveries_subscription_event"),
        Index("ix_webhook_deliveries_due", "next_attempt_at", postgresql_where=PENDING),
        Index("ix_webhook_deliveries_subscription_newest", "subscription_id", text("id DESC")),
        Index("ix_webhook_deliveries_finished", "created_at", postgresql_where=DELIVERY_FINISHED),
    )


class Mail(Base):
    """One mail to one user. ``key`` makes it once: one event (or one reminder) per recipient.

    ``sending`` is claimed by one worker until ``claimed_until``; ``handed_over_at`` is set
    just before the mail server is given the message: a crash after it leaves the mail
    ``in_doubt`` (never sent again), a crash before it lets the mail be tried again.
    """

    __tablename__ = "mails"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    recipient_id: Mapped[int] = mapped_column(BigInteger)
    recipient_role: Mapped[str] = mapped_column(String(16))
    appointment_id: Mapped[int | None] = mapped_column(BigInteger)
    # What the templates show (the appointment as the event described it): rendered at sending,
    # with the recipient's current name and address.
    context: Mapped[dict[str, Any]] = mapped_column(JSONB)
    message_id: Mapped[str] = mapped_column(String(250))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    handed_over_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(String(300))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        CheckConstraint(
            "status IN ('pending', 'sending', 'sent', 'failed', 'skipped', 'in_doubt')", name="status_known"
        ),
        Index("ix_mails_due", "next_attempt_at", postgresql_where=PENDING),
        Index("ix_mails_claimed", "claimed_until", postgresql_where=text("status = 'sending'")),
        Index("ix_mails_finished", "created_at", postgresql_where=MAIL_FINISHED),
    )
