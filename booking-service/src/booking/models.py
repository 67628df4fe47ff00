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
from chassis.idempotency import IdempotencyKey  # noqa: F401  (its table is this service's too)
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


class AppointmentHistory(Base):
    """One change of an appointment, written in the change's transaction; never updated or deleted
    (a trigger of the migration refuses both)."""

    __tablename__ = "appointment_history"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    # No foreign key: appointments are never deleted, and history outlives any cleanup of them.
    appointment_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=text("clock_timestamp()")
    )
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
