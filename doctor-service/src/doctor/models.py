"""doctor-service tables: the doctor profiles (and chassis' outbox and inbox)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Index,
    Integer,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from chassis.db import Base
from chassis.revocations import TokenRevocation  # noqa: F401  (its table is this service's too)
from doctor.domain import (
    FULL_NAME_MAX_LENGTH,
    MAX_ACTIVE_PER_PATIENT,
    MAX_HORIZON_DAYS,
    MAX_NOTICE_MINUTES,
    MAX_YEARS_OF_EXPERIENCE,
    SPECIALTY_MAX_LENGTH,
)

__all__ = ["Base", "Doctor", "ListedSpecialtyCount"]

LISTED = text("is_active")
POLICY_CHECKS = {
    "min_notice_minutes_range": f"min_notice_minutes BETWEEN 0 AND {MAX_NOTICE_MINUTES}",
    "booking_horizon_days_range": f"booking_horizon_days BETWEEN 1 AND {MAX_HORIZON_DAYS}",
    "cancellation_notice_minutes_range": f"cancellation_notice_minutes BETWEEN 0 AND {MAX_NOTICE_MINUTES}",
    "max_active_per_patient_range": f"max_active_per_patient BETWEEN 1 AND {MAX_ACTIVE_PER_PATIENT}",
}


class Doctor(Base):
    """A doctor's profile; its id is the doctor's user id.

    Rows are never deleted: a profile whose user stops being an active doctor is
    hidden (``is_active`` false), so its specialty and bio survive a comeback.
    """

    __tablename__ = "doctors"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    full_name: Mapped[str] = mapped_column(String(FULL_NAME_MAX_LENGTH), default="")
    specialty: Mapped[str] = mapped_column(String(SPECIALTY_MAX_LENGTH), default="")
    bio: Mapped[str] = mapped_column(Text, default="")
    years_of_experience: Mapped[int] = mapped_column(Integer, default=0)
    is_active: Mapped[bool] = mapped_column(Boolean)
    # The identity revision of the user that this row reflects (older events are ignored).
    user_revision: Mapped[int] = mapped_column(BigInteger)
    # A counter of this profile's own published changes (doctor.profile.updated's revision).
    revision: Mapped[int] = mapped_column(BigInteger, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # The booking policy (spec/API.md, "Booking policy"); null: no limit.
    min_notice_minutes: Mapped[int] = mapped_column(Integer, server_default="0", default=0)
    booking_horizon_days: Mapped[int | None] = mapped_column(Integer)
    cancellation_notice_minutes: Mapped[int] = mapped_column(Integer, server_default="0", default=0)
    max_active_per_patient: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (
        *(CheckConstraint(condition, name=name) for name, condition in POLICY_CHECKS.items()),
        CheckConstraint(
            f"years_of_experience BETWEEN 0 AND {MAX_YEARS_OF_EXPERIENCE}", name="years_of_experience_range"
        ),
        CheckConstraint("revision >= 1", name="revision_positive"),
        # The listing's order (full_name, id) over listed doctors only.
        Index("ix_doctors_listed_full_name_id", "full_name", "id", postgresql_where=LISTED),
        # ?search= is ILIKE '%term%' on the name or the specialty: trigram GIN indexes
        # serve it (as a BitmapOr) without scanning every profile.
        Index(
            "ix_doctors_listed_full_name_trgm",
            "full_name",
            postgresql_using="gin",
            postgresql_ops={"full_name": "gin_trgm_ops"},
            postgresql_where=LISTED,
        ),
        Index(
            "ix_doctors_listed_specialty_trgm",
            "specialty",
            postgresql_using="gin",
            postgresql_ops={"specialty": "gin_trgm_ops"},
            postgresql_where=LISTED,
        ),
        # ?specialty= is an exact, case-insensitive match; the index also yields the listing's order.
        Index(
            "ix_doctors_listed_specialty_lower",
            func.lower(text("specialty")),
            "full_name",
            "id",
            postgresql_where=LISTED,
        ),
    )


class ListedSpecialtyCount(Base):
    """How many listed doctors have each specialty: kept by triggers on ``doctors``.

    Statement-level triggers (migration 0002) apply every insert, update, delete and truncate
    of ``doctors`` in the same transaction, so the sums are exact in every snapshot. The
    search's ``count`` sums these rows instead of finding every matching doctor.
    """

    __tablename__ = "listed_specialty_counts"

    specialty: Mapped[str] = mapped_column(String(SPECIALTY_MAX_LENGTH), primary_key=True)
    doctors: Mapped[int] = mapped_column(BigInteger)
