"""scheduling's doctors read model: kept in step with identity's users (``events`` hands their
events here), and a doctor identity has not told about yet recorded from their token; and the
start-time rules of each doctor's booking policy (minimum notice, horizon), fed by
``doctor.profile.updated``, which the hold and the free listing read."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from chassis.timezones import utcnow
from scheduling import events
from scheduling.domain import TimeslotState
from scheduling.models import Doctor, Timeslot

log = logging.getLogger("scheduling.doctors")


def record_doctor_from_token(session: Session, doctor_id: int) -> None:
    """A doctor whose verified token creates timeslots before identity's event arrived: recorded as
    an active doctor at revision 0 (any identity event supersedes it)."""
    session.execute(
        insert(Doctor)
        .values(id=doctor_id, is_doctor=True, is_active=True, revision=0)
        .on_conflict_do_nothing(index_elements=[Doctor.id])
    )


def remove_future_free_timeslots(session: Session, doctor_id: int, now: datetime) -> int:
    """Delete a doctor's future available timeslots, announcing each; returns how many.

    Held and booked ones stay: booking cancels their appointments, and the cancellation
    events free them, which deletes them then (``releases.free_timeslot``).
    """
    removed = session.scalars(
        delete(Timeslot)
        .where(
            Timeslot.doctor_id == doctor_id,
            Timeslot.state == TimeslotState.AVAILABLE,
            Timeslot.start_time > now,
        )
        .returning(Timeslot)
    ).all()
    for timeslot in removed:
        events.publish_timeslot_deleted(session, timeslot, reason=events.DOCTOR_UNAVAILABLE)
    return len(removed)


def apply_user_state(session: Session, *, user_id: int, role: str, is_active: bool, revision: int) -> None:
    """Bring the read model to identity's state of a user, unless it already holds a newer revision.

    The revision check sits in the upsert itself, so two replicas handling two
    events of one user at once still end at the newer one.
    """
    values = {"is_doctor": role == "doctor", "is_active": is_active, "revision": revision}
    upsert = insert(Doctor).values(id=user_id, **values)
    applied = session.scalar(
        upsert.on_conflict_do_update(
            index_elements=[Doctor.id],
            set_={**values, "updated_at": utcnow()},
            where=Doctor.revision < upsert.excluded.revision,
        ).returning(Doctor.id)
    )
    if applied is None:
        log.info("ignoring stale identity revision %s of user %s", revision, user_id)
        return
    if not (values["is_doctor"] and is_active):
        removed = remove_future_free_timeslots(session, user_id, utcnow())
        if removed:
            log.info("removed %s future free timeslots of user %s (no active doctor)", removed, user_id)


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
