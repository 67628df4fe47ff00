"""The waitlist's tables: entries, their offers, and timeslots waiting to be offered."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    String,
    Uuid,
    false,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from chassis.db import Base

WAITING_SQL = "ended_at IS NULL"
OPEN_SQL = "state = 'open'"
ONE_ENTRY_PER_RANGE_INDEX = "uq_waitlist_entries_waiting_range"


class WaitlistEntry(Base):
    """A patient waiting for a timeslot of one doctor starting on one of the days of a range."""

    __tablename__ = "waitlist_entries"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    patient_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    doctor_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    date_from: Mapped[date] = mapped_column(Date, nullable=False)
    date_to: Mapped[date] = mapped_column(Date, nullable=False)
    # The range as instants (the clinic days' bounds when the patient joined), for matching.
    range_start: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    range_end: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Why the entry ended: the patient left, or booked the timeslot offered to them.
    end_reason: Mapped[str | None] = mapped_column(String(16))

    __table_args__ = (
        CheckConstraint("date_to >= date_from", name="dates_in_order"),
        CheckConstraint("range_end > range_start", name="range_in_order"),
        CheckConstraint("(ended_at IS NULL) = (end_reason IS NULL)", name="end_reason_iff_ended"),
        CheckConstraint("end_reason IN ('left', 'booked')", name="end_reason_known"),
        # Joining twice for the same range is a conflict, not a second place in line.
        Index(
            ONE_ENTRY_PER_RANGE_INDEX,
            "patient_id",
            "doctor_id",
            "date_from",
            "date_to",
            unique=True,
            postgresql_where=text(WAITING_SQL),
        ),
        # Who is next in line for a doctor's timeslot: the waiting entries, oldest first.
        Index(
            "ix_waitlist_entries_waiting_doctor",
            "doctor_id",
            "created_at",
            postgresql_where=text(WAITING_SQL),
        ),
        Index("ix_waitlist_entries_patient_id", "patient_id", "created_at"),
    )
    __mapper_args__ = {"eager_defaults": True}


class WaitlistOffer(Base):
    """A timeslot offered to an entry, held at scheduling under ``reservation_id`` until ``expires_at``."""

    __tablename__ = "waitlist_offers"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    entry_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("waitlist_entries.id"), nullable=False)
    timeslot_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    reservation_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    start_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    end_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False, server_default="open")
    # Whether ``booking.waitlist.offered`` went out (once, when the hold first stood).
    announced: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint("state IN ('open', 'accepted', 'expired', 'withdrawn')", name="state_known"),
        CheckConstraint("(state = 'open') = (closed_at IS NULL)", name="closed_iff_not_open"),
        Index("uq_waitlist_offers_reservation_id", "reservation_id", unique=True),
        # One open offer per entry, and one per timeslot (it is held for one reservation).
        Index("uq_waitlist_offers_open_entry", "entry_id", unique=True, postgresql_where=text(OPEN_SQL)),
        Index(
            "uq_waitlist_offers_open_timeslot", "timeslot_id", unique=True, postgresql_where=text(OPEN_SQL)
        ),
        Index("ix_waitlist_offers_open_expires_at", "expires_at", postgresql_where=text(OPEN_SQL)),
        Index("ix_waitlist_offers_entry_id_timeslot_id", "entry_id", "timeslot_id"),
    )
    __mapper_args__ = {"eager_defaults": True}


class WaitlistOpening(Base):
    """A timeslot that became bookable while someone waits for its doctor: to be offered."""

    __tablename__ = "waitlist_openings"

    timeslot_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    doctor_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    start_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    end_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    noticed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
