"""doctor-service write use cases: profiles edited through the API, and kept in step with
identity's users (``events`` hands their events here). Each runs in one transaction (the
request's session, or the consumer's), together with the outbox row of the event it publishes.
Reads are in ``queries``.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from doctor import events
from doctor.domain import POLICY_FIELDS, UserFacts, is_stale, should_open_profile
from doctor.models import Doctor
from doctor.queries import get_listed_doctor, get_own_profile

# What a PATCH of the profile or of the booking policy may change (the policy is part of the
# profile: a change bumps its revision and is published with it).
EDITABLE_FIELDS = ("specialty", "bio", "years_of_experience", *POLICY_FIELDS)


def update_own_profile(session: Session, user_id: int, changes: Mapping[str, object]) -> Doctor:
    """A doctor edits their own specialty, bio, years of experience or booking policy."""
    with session.begin():
        doctor = get_own_profile(session, user_id, for_update=True)
        _apply_changes(session, doctor, changes)
    return doctor


def update_doctor_profile(session: Session, doctor_id: int, changes: Mapping[str, object]) -> Doctor:
    """An admin edits a listed doctor's specialty, bio, years of experience or booking policy."""
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


def apply_user_facts(session: Session, facts: UserFacts, *, correlation_id: str | None = None) -> None:
    """Bring the user's profile in line with ``facts``, unless it already reflects newer ones."""
    doctor = session.get(Doctor, facts.user_id, with_for_update=True)
    if doctor is None:
        if not should_open_profile(facts):
            return
        doctor = _open_profile(session, facts)
        if doctor is not None:
            # A hidden placeholder is news to no one: only a listed new profile is published.
            if doctor.is_active:
                events.publish_profile(session, doctor, correlation_id)
            return
        # Another consumer created it a moment ago: apply these facts on top of its row.
        doctor = session.get(Doctor, facts.user_id, with_for_update=True, populate_existing=True)
        assert doctor is not None  # rows are never deleted
    if is_stale(facts, doctor.user_revision):
        return
    before = events.profile_updated_data(doctor)
    doctor.user_revision = facts.revision
    if facts.full_name is not None:
        doctor.full_name = facts.full_name
    doctor.is_active = facts.is_listed_doctor
    if events.profile_updated_data(doctor) != before:
        events.record_profile_change(session, doctor, correlation_id=correlation_id)


def _open_profile(session: Session, facts: UserFacts) -> Doctor | None:
    """Insert the user's profile row; None when a concurrent transaction inserted it first."""
    statement = (
        insert(Doctor)
        .values(
            id=facts.user_id,
            full_name=facts.full_name or "",
            specialty="",
            bio="",
            years_of_experience=0,
            is_active=facts.is_listed_doctor,
            user_revision=facts.revision,
            revision=1,
        )
        .on_conflict_do_nothing(index_elements=[Doctor.id])
        .returning(Doctor)
    )
    return session.scalars(statement).one_or_none()
