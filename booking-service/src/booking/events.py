"""Events booking-service publishes (their contract) and the handlers of those it consumes.

Published (schemas in ``contracts/events/``): ``booking.appointment.booked``,
``booking.appointment.status_changed``, ``booking.appointment.cancelled`` and
``booking.appointment.rescheduled``, always written to the outbox in the transaction of
the change.

Consumed: identity's user events feed the local read model of users (names
shown on appointments); ``identity.user.deactivated`` also cancels the user's
future active appointments. ``doctor.profile.updated`` feeds the doctors' booking policies
(the per-patient limit and the cancellation notice, ``booking.policy``). scheduling's
``timeslot.created``/``released`` feed the waitlist (``services/offers.py``), which publishes
``booking.waitlist.offered``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection
from sqlalchemy.orm import Session

from booking.domain import AppointmentStatus, CancelledBy
from booking.models import Appointment
from booking.queries import AppointmentView
from chassis.auth import Principal
from chassis.messaging import Envelope, Handler, add_event
from chassis.revocations import with_token_revocations

if TYPE_CHECKING:
    from booking.services.waitlist import EntryView

PRODUCER = "booking"

APPOINTMENT_BOOKED = "booking.appointment.booked"
APPOINTMENT_STATUS_CHANGED = "booking.appointment.status_changed"
APPOINTMENT_CANCELLED = "booking.appointment.cancelled"
APPOINTMENT_RESCHEDULED = "booking.appointment.rescheduled"
DOCTOR_PROFILE_UPDATED = "doctor.profile.updated"

USER_REGISTERED = "identity.user.registered"
USER_UPDATED = "identity.user.updated"
USER_DEACTIVATED = "identity.user.deactivated"


def _facts(appointment: Appointment | AppointmentView, reservation_id: uuid.UUID) -> dict[str, Any]:
    # What every appointment event carries: enough for scheduling to find the timeslot, and the
    # patient's reason for the appointment that notification's webhooks send.
    return {
        "appointment_id": appointment.id,
        "reservation_id": reservation_id,
        "timeslot_id": appointment.timeslot_id,
        "doctor_id": appointment.doctor_id,
        "patient_id": appointment.patient_id,
        "start_time": appointment.start_time,
        "end_time": appointment.end_time,
        "reason": appointment.reason,
    }


def publish_booked(connection: Connection, appointment: AppointmentView, reservation_id: uuid.UUID) -> None:
    """``booking.appointment.booked``: scheduling turns the hold into ``booked``."""
    data = {**_facts(appointment, reservation_id), "status": AppointmentStatus.PENDING}
    add_event(connection, APPOINTMENT_BOOKED, data, producer=PRODUCER)


def publish_status_changed(session: Session, appointment: Appointment, previous: AppointmentStatus) -> None:
    """``booking.appointment.status_changed``: confirmed, completed or no_show."""
    data = {
        **_facts(appointment, appointment.reservation_id),
        "previous_status": previous,
        "status": appointment.status,
    }
    add_event(session, APPOINTMENT_STATUS_CHANGED, data, producer=PRODUCER)


def publish_cancelled(
    session: Session, appointment: Appointment, previous: AppointmentStatus, cancelled_by: CancelledBy
) -> None:
    """``booking.appointment.cancelled``: scheduling frees the timeslot if it still has the reservation."""
    data = {
        **_facts(appointment, appointment.reservation_id),
        "previous_status": previous,
        "cancelled_by": cancelled_by,
        "cancellation_reason": appointment.cancellation_reason,
    }
    add_event(session, APPOINTMENT_CANCELLED, data, producer=PRODUCER)


@dataclass(frozen=True, slots=True)
class Moved:
    """Where a rescheduled appointment was: its old reservation and timeslot."""

    reservation_id: uuid.UUID
    timeslot_id: int
    start_time: datetime
    end_time: datetime


def publish_rescheduled(session: Session, appointment: Appointment, old: Moved, actor: Principal) -> None:
    """``booking.appointment.rescheduled``: scheduling books the new hold and frees the old timeslot
    if it still carries the old reservation."""
    data = {
        **_facts(appointment, appointment.reservation_id),
        "status": appointment.status,
        "old_reservation_id": old.reservation_id,
        "old_timeslot_id": old.timeslot_id,
        "old_start_time": old.start_time,
        "old_end_time": old.end_time,
        "actor_id": actor.id,
        "actor_role": actor.role,
    }
    add_event(session, APPOINTMENT_RESCHEDULED, data, producer=PRODUCER)


def on_doctor_profile_updated(session: Session, envelope: Envelope) -> None:
    from booking.services import policy  # services publishes through this module: imported when handling

    data = envelope.data
    if "booking_policy" in data:
        policy.remember_policy(
            session, int(data["doctor_id"]), data["booking_policy"], revision=int(data["revision"])
        )


def on_user_registered(session: Session, envelope: Envelope) -> None:
    from booking import services  # services publishes through this module: imported when handling

    data = envelope.data
    current = services.remember_user(
        session,
        data["user_id"],
        revision=data["revision"],
        role=data["role"],
        is_active=data["is_active"],
        full_name=data["full_name"],
    )
    # The newest event decides, whatever its type: an update of an inactive account (a rename
    # made just after the deactivation, delivered before it) cancels like the deactivation,
    # which then arrives stale and changes nothing. Found by the soak.
    if current and not data["is_active"]:
        services.cancel_appointments_of_deactivated_user(session, data["user_id"])


def on_user_updated(session: Session, envelope: Envelope) -> None:
    on_user_registered(session, envelope)


def on_user_deactivated(session: Session, envelope: Envelope) -> None:
    from booking import services

    data = envelope.data
    # The name since the event carries it (an older event does not: the name stays as it is).
    current = services.remember_user(
        session,
        data["user_id"],
        revision=data["revision"],
        role=data["role"],
        is_active=False,
        full_name=data.get("full_name"),
    )
    # A stale deactivation (the user was reactivated since) must not cancel newer bookings.
    if current:
        services.cancel_appointments_of_deactivated_user(session, data["user_id"])


WAITLIST_OFFERED = "booking.waitlist.offered"
TIMESLOT_CREATED = "scheduling.timeslot.created"
TIMESLOT_RELEASED = "scheduling.timeslot.released"


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def offered_data(entry: EntryView, *, patient_id: int) -> dict[str, Any]:
    """The offered event's data for an entry with its open offer."""
    offer = entry.offer or {}
    return {
        "entry": {
            "id": entry.id,
            "doctor_id": entry.doctor_id,
            "date_from": entry.date_from.isoformat(),
            "date_to": entry.date_to.isoformat(),
            "created_at": _iso(entry.created_at),
            "offer": {
                "timeslot_id": offer["timeslot_id"],
                "start_time": _iso(offer["start_time"]),
                "end_time": _iso(offer["end_time"]),
                "expires_at": _iso(offer["expires_at"]),
            },
        },
        "patient_id": patient_id,
    }


def publish_offered(session: Session, entry: EntryView, *, patient_id: int) -> None:
    """``booking.waitlist.offered``: notification-service tells the patient (mail, webhooks)."""
    add_event(session, WAITLIST_OFFERED, offered_data(entry, patient_id=patient_id), producer=PRODUCER)


def _bookable(session: Session, data: dict[str, Any]) -> None:
    from booking.services import offers  # it publishes through this module: imported when handling

    offers.note_bookable(
        session,
        timeslot_id=int(data["timeslot_id"]),
        doctor_id=int(data["doctor_id"]),
        start_time=datetime.fromisoformat(data["start_time"]),
        end_time=datetime.fromisoformat(data["end_time"]),
    )


def on_timeslot_created(session: Session, envelope: Envelope) -> None:
    _bookable(session, envelope.data)


def on_timeslot_released(session: Session, envelope: Envelope) -> None:
    from booking.services import offers

    # A released offer hold ends that offer (scheduling's sweeper freed it, booking did not).
    offers.forget_released_hold(session, uuid.UUID(str(envelope.data["reservation_id"])))
    _bookable(session, envelope.data)


HANDLERS: dict[str, Handler] = {
    USER_REGISTERED: on_user_registered,
    USER_UPDATED: on_user_updated,
    USER_DEACTIVATED: on_user_deactivated,
    TIMESLOT_CREATED: on_timeslot_created,
    TIMESLOT_RELEASED: on_timeslot_released,
    DOCTOR_PROFILE_UPDATED: on_doctor_profile_updated,
}
# What the consumer runs and the migrate job binds: these handlers, plus recording the token
# revocations among identity's events (chassis.revocations).
CONSUMED: dict[str, Handler] = with_token_revocations(HANDLERS)
