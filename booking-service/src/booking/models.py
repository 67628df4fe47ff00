"""booking-service tables: appointments, the local read model of users, the waitlist (entries,
their offers, timeslots waiting to be offered) and calendar feeds.

The rules the database can enforce live here as named constraints: one active
appointment per timeslot (a partial unique index), one appointment per
reservation, none for an abandoned reservation, known statuses, a sensible time range.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    FetchedValue,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    Uuid,
    false,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from chassis.db import Base
from chassis.idempotency import IdempotencyKey  # noqa: F401  (its table is this service's too)
from chassis.revocations import TokenRevocation  # noqa: F401  (its table is this service's too)

TZ = DateTime(timezone=True)  # every instant is stored with its time zone
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
    start_time: Mapped[datetime] = mapped_column(TZ, nullable=False)
    end_time: Mapped[datetime] = mapped_column(TZ, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    cancellation_reason: Mapped[str | None] = mapped_column(Text)
    cancelled_by: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(TZ, nullable=False, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(TZ, nullable=False, server_default=func.now())
    # The doctor's cancellation notice when it was booked: a patient cancels or moves it only until
    # that long before its start. A later policy change never reaches it; a move keeps it. An insert
    # that leaves it out gets the doctor's current notice from a trigger (migration 0009).
    cancellation_notice_minutes: Mapped[int] = mapped_column(
        Integer, nullable=False, server_default=FetchedValue()
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


class AbandonedReservation(Base):
    """A reservation booking told scheduling's hold sweeper no appointment was stored for: none
    ever will be (a trigger of migration 0006 refuses the commit; services/reservations.py)."""

    __tablename__ = "abandoned_reservations"

    reservation_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    abandoned_at: Mapped[datetime] = mapped_column(TZ, nullable=False, server_default=func.now())


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
    updated_at: Mapped[datetime] = mapped_column(TZ, nullable=False, server_default=func.now())

    __table_args__ = (CheckConstraint("role IN ('admin', 'doctor', 'patient')", name="role_known"),)


# -- the waitlist --------------------------------------------------------------------------

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
    range_start: Mapped[datetime] = mapped_column(TZ, nullable=False)
    range_end: Mapped[datetime] = mapped_column(TZ, nullable=False)
    created_at: Mapped[datetime] = mapped_column(TZ, nullable=False, server_default=func.now())
    ended_at: Mapped[datetime | None] = mapped_column(TZ)
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
    start_time: Mapped[datetime] = mapped_column(TZ, nullable=False)
    end_time: Mapped[datetime] = mapped_column(TZ, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(TZ, nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False, server_default="open")
    # Whether ``booking.waitlist.offered`` went out (once, when the hold first stood).
    announced: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(TZ, nullable=False, server_default=func.now())
    closed_at: Mapped[datetime | None] = mapped_column(TZ)

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
        # Who let a timeslot go, on any of their entries (the worker's next entry; migration 0008).
        Index("ix_waitlist_offers_timeslot_id", "timeslot_id"),
    )
    __mapper_args__ = {"eager_defaults": True}


class WaitlistOpening(Base):
    """A timeslot that became bookable while someone waits for its doctor: to be offered."""

    __tablename__ = "waitlist_openings"

    timeslot_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    doctor_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    start_time: Mapped[datetime] = mapped_column(TZ, nullable=False)
    end_time: Mapped[datetime] = mapped_column(TZ, nullable=False)
    noticed_at: Mapped[datetime] = mapped_column(TZ, nullable=False, server_default=func.now())


# -- calendar feeds ------------------------------------------------------------------------


class CalendarFeed(Base):
    """A user's feed. Its URL's secret is HMAC(key, nonce): the row keeps the nonce and the secret's
    SHA-256, never the secret itself; rotating draws a new nonce, so the old URL finds nothing."""

    __tablename__ = "calendar_feeds"

    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    # Whose appointments the feed shows: the user's as patient, or as doctor.
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    nonce: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    secret_hash: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    created_at: Mapped[datetime] = mapped_column(TZ, nullable=False, server_default=func.now())
    rotated_at: Mapped[datetime] = mapped_column(TZ, nullable=False, server_default=func.now())

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


class AppointmentHistory(Base):
    """One change of an appointment, written in the change's transaction; never updated or deleted
    (a trigger of the migration refuses both)."""

    __tablename__ = "appointment_history"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    # No foreign key: appointments are never deleted, and history outlives any cleanup of them.
    appointment_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    at: Mapped[datetime] = mapped_column(TZ, nullable=False, server_default=text("clock_timestamp()"))
    # Null for the system (a cascade from a deactivated account).
    actor_id: Mapped[int | None] = mapped_column(BigInteger)
    actor_role: Mapped[str] = mapped_column(String(16), nullable=False)
    action: Mapped[str] = mapped_column(String(16), nullable=False)
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str | None] = mapped_column(String(16))
    from_timeslot_id: Mapped[int | None] = mapped_column(BigInteger)
    to_timeslot_id: Mapped[int | None] = mapped_column(BigInteger)
    reason: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        CheckConstraint(
            "action IN ('booked', 'status_changed', 'rescheduled', 'cancelled')", name="action_known"
        ),
        CheckConstraint("actor_role IN ('admin', 'doctor', 'patient', 'system')", name="actor_role_known"),
        Index("ix_appointment_history_appointment_id", "appointment_id", "id"),
    )


class DoctorPolicy(Base):
    """What booking applies of a doctor's booking policy, fed by ``doctor.profile.updated``.

    A doctor without a row has the defaults: no cancellation notice, no per-patient limit."""

    __tablename__ = "doctor_policies"

    doctor_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    cancellation_notice_minutes: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    max_active_per_patient: Mapped[int | None] = mapped_column(Integer)
    # doctor-service's profile revision of the last applied event: older events are stale.
    revision: Mapped[int] = mapped_column(Integer, nullable=False)
