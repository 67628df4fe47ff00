"""Use cases of the booking policy: a doctor reads and changes their own, an admin anyone's.

The policy is part of the profile: a change bumps the profile's revision and publishes
``doctor.profile.updated`` (with the policy) in the same transaction; scheduling and booking
apply it from that event on (spec/API.md, "Booking policy").
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy.orm import Session

from doctor import events
from doctor.domain import POLICY_FIELDS
from doctor.models import Doctor
from doctor.services import get_listed_doctor, get_own_profile

# A doctor who never set a policy: no notice, no horizon, no cancellation notice, no limit.
NO_POLICY = {
    "min_notice_minutes": 0,
    "booking_horizon_days": None,
    "cancellation_notice_minutes": 0,
    "max_active_per_patient": None,
}


def own_policy(session: Session, user_id: int) -> Doctor:
    with session.begin():
        return get_own_profile(session, user_id)


def doctors_policy(session: Session, doctor_id: int) -> Doctor:
    with session.begin():
        return get_listed_doctor(session, doctor_id)


def change_own_policy(session: Session, user_id: int, changes: Mapping[str, object]) -> Doctor:
    """A doctor changes their own booking policy."""
    with session.begin():
        doctor = get_own_profile(session, user_id, for_update=True)
        _apply(session, doctor, changes)
    return doctor


def change_doctors_policy(session: Session, doctor_id: int, changes: Mapping[str, object]) -> Doctor:
    """An admin changes a listed doctor's booking policy."""
    with session.begin():
        doctor = get_listed_doctor(session, doctor_id, for_update=True)
        _apply(session, doctor, changes)
    return doctor


def _apply(session: Session, doctor: Doctor, changes: Mapping[str, object]) -> None:
    changed = False
    for field in POLICY_FIELDS:
        if field in changes and getattr(doctor, field) != changes[field]:
            setattr(doctor, field, changes[field])
            changed = True
    if changed:
        events.record_profile_change(session, doctor)
