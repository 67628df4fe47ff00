"""Events scheduling-service publishes (their contract) and the handlers of those it consumes.

Published, one per timeslot (schemas in ``contracts/events/``):

- ``scheduling.timeslot.created``: ``{timeslot_id, doctor_id, start_time, end_time}``
- ``scheduling.timeslot.deleted``: the same plus ``reason``: ``deleted_by_doctor`` or
  ``doctor_unavailable`` (deactivated, or no longer a doctor).
- ``scheduling.timeslot.released``: the same plus ``reservation_id`` and ``reason``, written
  by ``services.releases.free_timeslot``, the one function that frees a held or booked timeslot.

Consumed: ``identity.user.registered/updated/deactivated`` (the doctors read model),
``doctor.profile.updated`` (the start-time rules of each doctor's booking policy) and
``booking.appointment.booked/cancelled/rescheduled`` (docs/booking-protocol.md). Each
handler runs inside the transaction that records the event id in the inbox.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping

from sqlalchemy.orm import Session

from chassis.messaging import Envelope, Handler, add_event
from chassis.revocations import with_token_revocations
from scheduling.domain import timeslot_facts
from scheduling.models import Timeslot
from scheduling.services import reservations
from scheduling.services.releases import ReleaseReason

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


def on_user_registered_or_updated(session: Session, envelope: Envelope) -> None:
    from scheduling.services import doctors  # it publishes through this module: imported when handling

    data = envelope.data
    doctors.apply_user_state(
        session,
        user_id=int(data["user_id"]),
        role=data["role"],
        is_active=bool(data["is_active"]),
        revision=int(data["revision"]),
    )


def on_user_deactivated(session: Session, envelope: Envelope) -> None:
    from scheduling.services import doctors

    data = envelope.data
    doctors.apply_user_state(
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


def on_appointment_rescheduled(session: Session, envelope: Envelope) -> None:
    # The new timeslot booked for the new reservation, the old one freed if it still carries the
    # old reservation (and that reservation remembered as ended): each half conditional on its own.
    data = envelope.data
    reservations.book_for_reservation(
        session, int(data["timeslot_id"]), uuid.UUID(str(data["reservation_id"]))
    )
    reservations.free_for_reservation(
        session,
        int(data["old_timeslot_id"]),
        uuid.UUID(str(data["old_reservation_id"])),
        reason=ReleaseReason.APPOINTMENT_RESCHEDULED,
    )


def on_doctor_profile_updated(session: Session, envelope: Envelope) -> None:
    from scheduling.services import doctors

    data = envelope.data
    if "booking_policy" in data:
        doctors.remember_policy(
            session,
            int(data["doctor_id"]),
            data["booking_policy"],
            revision=int(data["revision"]),
            is_active=bool(data["is_active"]),
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
    "booking.appointment.rescheduled": on_appointment_rescheduled,
    "doctor.profile.updated": on_doctor_profile_updated,
}
# What the consumer runs and the migrate job binds: these handlers, plus recording the token
# revocations among identity's events (chassis.revocations).
CONSUMED: dict[str, Handler] = with_token_revocations(HANDLERS)
