"""Events: the one doctor-service publishes and the identity events it consumes.

Published: ``doctor.profile.updated`` (schema in
``contracts/events/doctor.profile.updated.schema.json``), written to the outbox in
the transaction of the change whenever a doctor's public profile changes: it
appears, its name, specialty, bio, experience or booking policy change, or it is hidden
or shown.

Consumed: ``identity.user.registered``, ``identity.user.updated`` and
``identity.user.deactivated``, which keep the profiles in step with the users.
Each handler runs in the transaction that records the event in the inbox, so a
duplicate is never applied twice; the user ``revision`` orders the rest.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import func
from sqlalchemy.orm import Session

from chassis.messaging import Envelope, Handler, add_event
from chassis.revocations import with_token_revocations
from doctor.domain import POLICY_FIELDS, UserFacts
from doctor.models import Doctor

PRODUCER = "doctor"
PROFILE_UPDATED = "doctor.profile.updated"

USER_REGISTERED = "identity.user.registered"
USER_UPDATED = "identity.user.updated"
USER_DEACTIVATED = "identity.user.deactivated"


def profile_updated_data(doctor: Doctor) -> dict[str, Any]:
    """The ``data`` of a ``doctor.profile.updated`` event: the profile's full current state."""
    return {
        "doctor_id": doctor.id,
        "full_name": doctor.full_name,
        "specialty": doctor.specialty,
        "bio": doctor.bio,
        "years_of_experience": doctor.years_of_experience,
        "is_active": doctor.is_active,
        "revision": doctor.revision,
        "booking_policy": {name: getattr(doctor, name) for name in POLICY_FIELDS},
    }


def record_profile_change(session: Session, doctor: Doctor, *, correlation_id: str | None = None) -> None:
    """Count a change of ``doctor``'s public profile and put its event in the outbox.

    Call it in the transaction that made the change, after making it.
    """
    doctor.revision += 1
    doctor.updated_at = func.now()
    publish_profile(session, doctor, correlation_id)


def publish_profile(session: Session, doctor: Doctor, correlation_id: str | None) -> None:
    add_event(
        session,
        PROFILE_UPDATED,
        profile_updated_data(doctor),
        producer=PRODUCER,
        correlation_id=correlation_id,
    )


def on_user_registered(session: Session, envelope: Envelope) -> None:
    """A new user: a doctor gets an empty profile."""
    from doctor import services  # services publishes through this module: imported when handling

    data = envelope.data
    facts = UserFacts(
        user_id=data["user_id"],
        revision=data["revision"],
        role=data["role"],
        is_active=data["is_active"],
        full_name=data["full_name"],
    )
    services.apply_user_facts(session, facts, correlation_id=envelope.correlation_id)


def on_user_updated(session: Session, envelope: Envelope) -> None:
    """A user's name, phone, role or active flag changed; the event carries the full state."""
    from doctor import services

    data = envelope.data
    facts = UserFacts(
        user_id=data["user_id"],
        revision=data["revision"],
        role=data["role"],
        is_active=data["is_active"],
        full_name=data["full_name"],
        role_changed="role" in data.get("changed", ()),
    )
    services.apply_user_facts(session, facts, correlation_id=envelope.correlation_id)


def on_user_deactivated(session: Session, envelope: Envelope) -> None:
    """A deactivated user's profile is hidden (and kept)."""
    from doctor import services

    data = envelope.data
    # The name since the event carries it (an older event does not: the name stays as it is).
    facts = UserFacts(
        user_id=data["user_id"],
        revision=data["revision"],
        role=data["role"],
        is_active=False,
        full_name=data.get("full_name"),
    )
    services.apply_user_facts(session, facts, correlation_id=envelope.correlation_id)


HANDLERS: Mapping[str, Handler] = {
    USER_REGISTERED: on_user_registered,
    USER_UPDATED: on_user_updated,
    USER_DEACTIVATED: on_user_deactivated,
}
# What the consumer runs and the migrate job binds: these handlers, plus recording the token
# revocations among identity's events (chassis.revocations).
CONSUMED: dict[str, Handler] = with_token_revocations(HANDLERS)
