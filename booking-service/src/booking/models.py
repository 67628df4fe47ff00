"""booking-service tables: appointments and the local read model of users.

The rules the database can enforce live here as named constraints: one active
appointment per timeslot (a partial unique index), one appointment per
reservation, known statuses, a sensible time range.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Identity,
    Index,
    Integer,
    String,
    Text,
    Uuid,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from chassis.db import Base
from chassis.revocations import TokenRevocation  # noqa: F401  (its table is this service's too)

ACTIVE_STATUS_SQL = "status IN ('pending', 'confirmed')"
ACTIVE_TIMESLOT_INDEX = "uq_appointments_active_timeslot"


class Appointment(Base):
    __tablename__ = "appointments"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    # The id booking gave its hold at scheduling: the key both services agree on.
    reservation_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    timeslot_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    doctor_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    patient_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    start_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    end_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    cancellation_reason: Mapped[str | None] = mapped_column(Text)
    cancelled_by: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    # How many times its status or time changed: the calendar feed's SEQUENCE. Counted by a
    # trigger (migration 0003), so no write path, present or future, can forget it.
    revision: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")

    __table_args__ = (
        CheckConstraint(
            "status IN ('pending', 'confirmed', 'cancelled', 'completed', 'no_show')", name="status_known"
        ),
        CheckConstraint("end_time > start_time", name="ends_after_start"),
        CheckConstraint(
            "(status = 'cancelled') = (cancelled_by IS NOT NULL)", name="cancelled_by_iff_cancelled"
        ),
        CheckConstraint("char_length(reason) <= 500", name="reason_length"),
        CheckConstraint("char_length(cancellation_reason) <= 500", name="cancellation_reason_length"),
        # The last line against double booking, whatever happens at scheduling.
        Index(ACTIVE_TIMESLOT_INDEX, "timeslot_id", unique=True, postgresql_where=text(ACTIVE_STATUS_SQL)),
        Index("uq_appointments_reservation_id", "reservation_id", unique=True),
        Index("ix_appointments_patient_id_created_at", "patient_id", "created_at"),
        Index("ix_appointments_doctor_id_created_at", "doctor_id", "created_at"),
        Index("ix_appointments_start_time", "start_time"),
    )


class User(Base):
    """What booking knows of identity's users: enough to show names, fed by identity events."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    # Empty until an event that carries the name arrives (``deactivated`` does not).
    full_name: Mapped[str] = mapped_column(String(150), nullable=False, server_default="")
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False)
    # identity's per-user revision of the last applied event: older events are stale.
    revision: Mapped[int] = mapped_column(Integer, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )

    __table_args__ = (CheckConstraint("role IN ('admin', 'doctor', 'patient')", name="role_known"),)


# The waitlist's and the calendar feeds' tables belong to this service's schema too.
from booking.calendar.models import CalendarFeed, CalendarFeedKey  # noqa: E402, F401
from booking.waitlist.models import WaitlistEntry, WaitlistOffer, WaitlistOpening  # noqa: E402, F401
