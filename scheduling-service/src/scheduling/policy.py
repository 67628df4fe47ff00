"""The start-time rules of each doctor's booking policy, as scheduling applies them.

doctor-service owns the policy; ``doctor.profile.updated`` carries it and this keeps the
minimum notice and the horizon on the doctors read model, where the hold's conditional
UPDATE and the free listing read them (``reservations``, ``services``). A change applies to
holds made after it arrives, never to timeslots already held or booked.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from scheduling.models import Doctor

log = logging.getLogger("scheduling.policy")


def remember_policy(
    session: Session, doctor_id: int, policy: dict[str, Any], *, revision: int, is_active: bool
) -> None:
    """Apply a profile event's policy unless a newer profile revision was applied already.

    A doctor identity has not told us about yet gets a row of revision 0 (so identity's
    events still decide whether they are an active doctor)."""
    values = {
        "min_notice_minutes": int(policy.get("min_notice_minutes") or 0),
        "booking_horizon_days": policy.get("booking_horizon_days"),
        "policy_revision": revision,
    }
    upsert = insert(Doctor).values(id=doctor_id, is_doctor=True, is_active=is_active, revision=0, **values)
    applied = session.scalar(
        upsert.on_conflict_do_update(
            index_elements=[Doctor.id],
            set_=values,
            where=Doctor.policy_revision < upsert.excluded.policy_revision,
        ).returning(Doctor.id)
    )
    if applied is None:
        log.info("ignoring stale booking policy revision %s of doctor %s", revision, doctor_id)
