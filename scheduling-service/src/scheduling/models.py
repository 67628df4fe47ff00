"""scheduling-service tables and their named constraints.

The database holds every rule it can: a doctor's timeslots never overlap (an
exclusion constraint, so concurrent requests cannot create an overlap either),
lengths stay within bounds, and a timeslot's state agrees with its reservation.
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
    String,
    column,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ExcludeConstraint
from sqlalchemy.orm import Mapped, mapped_column

from chassis.db import Base
from chassis.idempotency import IdempotencyKey  # noqa: F401  (its table is this service's too)
from chassis.revocations import TokenRevocation  # noqa: F401  (its table is this service's too)

NO_OVERLAP_CONSTRAINT = "ex_timeslots_no_overlap"


class Doctor(Base):
    """The local read model of identity's users, fed by ``identity.user.*`` events.

    One row per user identity told us about (patients too, so that out-of-order
    events still resolve by ``revision``). A doctor is a row with ``is_doctor``
    and ``is_active``. A doctor whose registration event has not arrived yet is
    inserted from their verified token with revision 0, so any event wins over it.
    """

    __tablename__ = "doctors"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    is_doctor: Mapped[bool]
    is_active: Mapped[bool]
    revision: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )
    # The booking policy's start-time rules (doctor-service's, fed by ``doctor.profile.updated``):
    # a timeslot is held and listed only from ``min_notice_minutes`` to ``booking_horizon_days``
    # (null: no limit) ahead. ``policy_revision`` is the profile revision of the last applied event.
    min_notice_minutes: Mapped[int] = mapped_column(Integer, server_default="0")
    booking_horizon_days: Mapped[int | None] = mapped_column(Integer)
    policy_revision: Mapped[int] = mapped_column(Integer, server_default="0")

    __table_args__ = (CheckConstraint("revision >= 0", name="revision_not_negative"),)


class Timeslot(Base):
    __tablename__ = "timeslots"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    doctor_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("doctors.id"))
    start_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    end_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    state: Mapped[str] = mapped_column(String(16), server_default="available")
    reservation_id: Mapped[uuid.UUID | None]
    held_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )

    __table_args__ = (
        CheckConstraint("end_time > start_time", name="ends_after_start"),
        CheckConstraint(
            "end_time - start_time BETWEEN interval '5 minutes' AND interval '12 hours'",
            name="length_bounds",
        ),
        CheckConstraint("state IN ('available', 'held', 'booked')", name="state_known"),
        CheckConstraint(
            "(state = 'available' AND reservation_id IS NULL AND held_until IS NULL)"
            " OR (state = 'held' AND reservation_id IS NOT NULL AND held_until IS NOT NULL)"
            " OR (state = 'booked' AND reservation_id IS NOT NULL AND held_until IS NULL)",
            name="state_consistent",
        ),
        ExcludeConstraint(
            (column("doctor_id"), "="),
            (func.tstzrange(column("start_time"), column("end_time"), text("'[)'")), "&&"),
            name=NO_OVERLAP_CONSTRAINT,
            using="gist",
        ),
        # A doctor's own listing: by doctor, earliest first, optionally one day.
        Index("ix_timeslots_doctor_id_start_time", "doctor_id", "start_time"),
        # Patients' free listing stays fast with millions of rows: only free ones are indexed.
        Index(
            "ix_timeslots_free_doctor_id_start_time",
            "doctor_id",
            "start_time",
            postgresql_where=text("state = 'available'"),
        ),
        # The hold sweeper looks only at holds, oldest expiry first.
        Index("ix_timeslots_held_until", "held_until", postgresql_where=text("state = 'held'")),
    )
    # Read server-side defaults back with RETURNING so rows are usable after commit.
    __mapper_args__ = {"eager_defaults": True}


class CancelledReservation(Base):
    """Reservations whose appointment was cancelled: a late ``booked`` event must not revive them.

    Events may arrive out of order (retries, dead-letter replays); without this
    record a ``booked`` event processed after its ``cancelled`` would book a
    free timeslot for an appointment that no longer exists.
    """

    __tablename__ = "cancelled_reservations"

    reservation_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    timeslot_id: Mapped[int] = mapped_column(BigInteger)
    cancelled_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
