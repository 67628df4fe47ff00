"""Events scheduling-service publishes (their contract) and the handlers of those it consumes.

Published, one per timeslot (schemas in ``contracts/events/``):

- ``scheduling.timeslot.created``: ``{timeslot_id, doctor_id, start_time, end_time}``
- ``scheduling.timeslot.deleted``: the same plus ``reason``: ``deleted_by_doctor`` or
  ``doctor_unavailable`` (deactivated, or no longer a doctor).
- ``scheduling.timeslot.released``: the same plus ``reservation_id`` and ``reason``, written
  by ``releases.free_timeslot``, the one function that frees a held or booked timeslot.

Consumed: ``identity.user.registered/updated/deactivated`` (the doctors read model)
and ``booking.appointment.booked/cancelled`` (docs/booking-protocol.md). Each
handler runs inside the transaction that records the event id in the inbox.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from chassis.messaging import Envelope, Handler, add_event
from chassis.revocations import with_token_revocations
from chassis.timezones import utcnow
from scheduling import reservations
from scheduling.domain import TimeslotState, timeslot_facts
from scheduling.models import Doctor, Timeslot

log = logging.getLogger("scheduling.events")

PRODUCER = "scheduling"
TIMESLOT_CREATED = "scheduling.timeslot.created"
TIMESLOT_DELETED = "scheduling.timeslot.deleted"
DELETED_BY_DOCTOR = "deleted_by_doctor"
DOCTOR_UNAVAILABLE = "doctor_unavailable"


def publish_timeslot_created(session: Session, timeslot: Timeslot) -> None:
    add_event(session, TIMESLOT_CREATED, timeslot_facts(timeslot), producer=PRODUCER)


def publish_timeslot_deleted(session: Session, timeslot: Timeslot, *, reason: str) -> None:
    add_event(session, TIMESLOT_DELETED, {**timeslot_facts(timeslot), "reason": reason}, producer=PRODUCER)


def remove_future_free_timeslots(session: Session, doctor_id: int, now: datetime) -> int:
    """Delete a doctor's future available timeslots, announcing each; returns how many.

    Held and booked ones stay: booking cancels their appointments, and the
    cancellation events free (and keep) them as history.
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
        publish_timeslot_deleted(session, timeslot, reason=DOCTOR_UNAVAILABLE)
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


def on_user_registered_or_updated(session: Session, envelope: Envelope) -> None:
    data = envelope.data
    apply_user_state(
        session,
        user_id=int(data["user_id"]),
        role=data["role"],
        is_active=bool(data["is_active"]),
        revision=int(data["revision"]),
    )


def on_user_deactivated(session: Session, envelope: Envelope) -> None:
    data = envelope.data
    apply_user_state(
        session,
        user_id=int(data["user_id"]),
        role=data["role"],
        is_active=False,
        revision=int(data["revision"]),
    )


def on_appointment_booked(session: Session, envelope: Envelope) -> None:
    data = envelope.data
    reservations.book_for_reservation(
        session, int(data["timeslot_id"]), uuid.UUID(str(data["reservation_id"]))
    )


def on_appointment_cancelled(session: Session, envelope: Envelope) -> None:
    data = envelope.data
    reservations.free_for_reservation(
        session, int(data["timeslot_id"]), uuid.UUID(str(data["reservation_id"]))
    )


HANDLERS: Mapping[str, Handler] = {
    "identity.user.registered": on_user_registered_or_updated,
    "identity.user.updated": on_user_registered_or_updated,
    "identity.user.deactivated": on_user_deactivated,
    "booking.appointment.booked": on_appointment_booked,
    "booking.appointment.cancelled": on_appointment_cancelled,
}
# What the consumer runs and the migrate job binds: these handlers, plus recording the token
# revocations among identity's events (chassis.revocations).
CONSUMED: dict[str, Handler] = with_token_revocations(HANDLERS)
