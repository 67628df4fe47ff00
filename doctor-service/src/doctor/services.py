"""Use cases of the doctor API: find doctors, read and edit profiles.

Each use case that writes runs in one transaction, together with the outbox row
of the event it publishes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Select, func, or_, select
from sqlalchemy.orm import Session

from doctor import events
from doctor.domain import is_valid_doctor_id
from doctor.errors import DoctorNotFound, ProfileInactive, ProfileNotReady
from doctor.models import Doctor

EDITABLE_FIELDS = ("specialty", "bio", "years_of_experience")


@dataclass(frozen=True, slots=True)
class DoctorFilters:
    """What ``GET /api/doctors/`` narrows the listed doctors by."""

    search: str | None = None
    specialty: str | None = None


def like_contains(term: str) -> str:
    """An ILIKE pattern matching ``term`` anywhere, with its own ``%``, ``_`` and ``\\`` taken literally."""
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _conditions(filters: DoctorFilters) -> list[ColumnElement[bool]]:
    # Every condition keeps "is_active" so the planner can use the partial indexes.
    conditions: list[ColumnElement[bool]] = [Doctor.is_active]
    if filters.search:
        pattern = like_contains(filters.search)
        conditions.append(
            or_(Doctor.full_name.ilike(pattern, escape="\\"), Doctor.specialty.ilike(pattern, escape="\\"))
        )
    if filters.specialty:
        conditions.append(func.lower(Doctor.specialty) == filters.specialty.lower())
    return conditions


def listed_doctors_query(filters: DoctorFilters) -> Select[tuple[Doctor]]:
    """The listed doctors matching ``filters``, in a stable order (name, then id)."""
    return select(Doctor).where(*_conditions(filters)).order_by(Doctor.full_name, Doctor.id)


def listed_doctors_count_query(filters: DoctorFilters) -> Select[tuple[int]]:
    """How many listed doctors match ``filters``."""
    return select(func.count()).select_from(Doctor).where(*_conditions(filters))


def list_doctors(
    session: Session, filters: DoctorFilters, *, offset: int, limit: int
) -> tuple[int, Sequence[Doctor]]:
    """One page of the listed doctors matching ``filters`` and how many match in all."""
    count = session.scalar(listed_doctors_count_query(filters))
    doctors = session.scalars(listed_doctors_query(filters).offset(offset).limit(limit)).all()
    return count or 0, doctors


def get_listed_doctor(session: Session, doctor_id: int, *, for_update: bool = False) -> Doctor:
    """A listed doctor; unknown and hidden doctors alike are not found."""
    doctor = None
    if is_valid_doctor_id(doctor_id):
        doctor = session.get(Doctor, doctor_id, with_for_update=for_update)
    if doctor is None or not doctor.is_active:
        raise DoctorNotFound(f"There is no doctor with id {doctor_id}.")
    return doctor


def get_own_profile(session: Session, user_id: int, *, for_update: bool = False) -> Doctor:
    """The calling doctor's own profile."""
    doctor = session.get(Doctor, user_id, with_for_update=for_update)
    if doctor is None:
        raise ProfileNotReady(
            "Your doctor profile does not exist yet. It is created from your registration within "
            "moments; please try again shortly."
        )
    if not doctor.is_active:
        raise ProfileInactive("Your account has no active doctor profile.")
    return doctor


def update_own_profile(session: Session, user_id: int, changes: Mapping[str, object]) -> Doctor:
    """A doctor edits their own specialty, bio or years of experience."""
    with session.begin():
        doctor = get_own_profile(session, user_id, for_update=True)
        _apply_changes(session, doctor, changes)
    return doctor


def update_doctor_profile(session: Session, doctor_id: int, changes: Mapping[str, object]) -> Doctor:
    """An admin edits a listed doctor's specialty, bio or years of experience."""
    with session.begin():
        doctor = get_listed_doctor(session, doctor_id, for_update=True)
        _apply_changes(session, doctor, changes)
    return doctor


def _apply_changes(session: Session, doctor: Doctor, changes: Mapping[str, object]) -> None:
    changed = False
    for field in EDITABLE_FIELDS:
        if field in changes and getattr(doctor, field) != changes[field]:
            setattr(doctor, field, changes[field])
            changed = True
    # A PATCH that changes nothing publishes nothing: consumers would learn nothing new.
    if changed:
        events.record_profile_change(session, doctor)
