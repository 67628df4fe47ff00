"""Events: notification-service publishes none; it consumes booking's and identity's.

Consumed:
- ``identity.user.registered`` / ``updated`` / ``deactivated``: names, addresses and active
  flags of users (the user ``revision`` orders them);
- ``booking.appointment.booked`` / ``status_changed`` / ``cancelled`` / ``rescheduled``: the
  local view of appointments (reminders), one webhook delivery per subscriber and one mail per
  recipient;
- ``booking.waitlist.offered``: a ``waitlist.offered`` webhook delivery per subscriber.

Each handler runs in the transaction that records the event in the inbox (chassis), so the
rows it writes exist exactly once per event; the workers send them afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from chassis.messaging import Envelope, Handler
from chassis.revocations import with_token_revocations
from notification.domain import (
    BOOKED,
    CANCELLED,
    RESCHEDULED,
    STATUS_EVENT_TYPES,
    WAITLIST_OFFERED,
    Recipient,
)
from notification.services.news import (
    AppointmentFacts,
    MailPolicy,
    apply_appointment,
    appointment_body,
    queue_deliveries,
    queue_mails,
    remember_user,
)

USER_REGISTERED = "identity.user.registered"
USER_UPDATED = "identity.user.updated"
USER_DEACTIVATED = "identity.user.deactivated"
APPOINTMENT_BOOKED = "booking.appointment.booked"
APPOINTMENT_STATUS_CHANGED = "booking.appointment.status_changed"
APPOINTMENT_CANCELLED = "booking.appointment.cancelled"
APPOINTMENT_RESCHEDULED = "booking.appointment.rescheduled"
WAITLIST_OFFER = "booking.waitlist.offered"


def on_user_event(session: Session, envelope: Envelope) -> None:
    """Any of identity's user events: each carries the user's current facts and revision."""
    data = envelope.data
    remember_user(
        session,
        data["user_id"],
        revision=data["revision"],
        role=data["role"],
        full_name=data.get("full_name"),
        is_active=data.get("is_active", envelope.event_type != USER_DEACTIVATED),
        email=data.get("email"),
    )


def _facts(data: dict[str, Any], status: str) -> AppointmentFacts:
    return AppointmentFacts(
        id=data["appointment_id"],
        timeslot_id=data["timeslot_id"],
        doctor_id=data["doctor_id"],
        patient_id=data["patient_id"],
        start_time=datetime.fromisoformat(data["start_time"]),
        end_time=datetime.fromisoformat(data["end_time"]),
        status=status,
        reason=data.get("reason", ""),  # events published before booking sent it carry none
        cancellation_reason=data.get("cancellation_reason"),
    )


def _status_of(envelope: Envelope) -> str:
    if envelope.event_type == APPOINTMENT_CANCELLED:
        return "cancelled"
    return envelope.data["status"]


def _news_type(envelope: Envelope) -> str | None:
    """The webhook type of an appointment event (None: no news for subscribers)."""
    match envelope.event_type:
        case "booking.appointment.booked":
            return BOOKED
        case "booking.appointment.cancelled":
            return CANCELLED
        case "booking.appointment.rescheduled":
            return RESCHEDULED
        case _:
            return STATUS_EVENT_TYPES.get(envelope.data["status"])


def appointment_handler(mail: MailPolicy | None) -> Handler:
    """The handler of booking's appointment events, writing mails when ``mail`` is set."""

    def on_appointment_event(session: Session, envelope: Envelope) -> None:
        facts = _facts(envelope.data, _status_of(envelope))
        applied = apply_appointment(
            session, facts, occurred_at=envelope.occurred_at, booked=envelope.event_type == APPOINTMENT_BOOKED
        )
        news = _news_type(envelope)
        if news is None:
            return
        body = appointment_body(session, applied, facts)
        data: dict[str, Any] = {"appointment": body}
        if envelope.event_type == APPOINTMENT_RESCHEDULED:
            data["previous"] = {
                "timeslot_id": envelope.data["old_timeslot_id"],
                "start_time": envelope.data["old_start_time"],
                "end_time": envelope.data["old_end_time"],
            }
        queue_deliveries(
            session, event_id=envelope.event_id, event_type=news, occurred_at=envelope.occurred_at, data=data
        )
        # Mail tells what is true now: a late, older event (out of order) is not mailed.
        if applied.newest:
            queue_mails(
                session,
                mail,
                key=str(envelope.event_id),
                kind=news,
                appointment_id=facts.id,
                recipients={Recipient.PATIENT: facts.patient_id, Recipient.DOCTOR: facts.doctor_id},
                # No mail shows the patient's reason: it is not kept with the mails either.
                context={**data, "appointment": {**body, "reason": ""}},
            )

    return on_appointment_event


def on_waitlist_offered(session: Session, envelope: Envelope) -> None:
    """A waitlist offer: ``{"entry": <entry>}`` to the subscribers of ``waitlist.offered``."""
    queue_deliveries(
        session,
        event_id=envelope.event_id,
        event_type=WAITLIST_OFFERED,
        occurred_at=envelope.occurred_at,
        data={"entry": envelope.data["entry"]},
    )


def consumed(mail: MailPolicy | None) -> dict[str, Handler]:
    """What the consumer runs and the migrate job binds: these handlers, plus recording the token
    revocations among identity's events (chassis.revocations)."""
    on_appointment_event = appointment_handler(mail)
    handlers: dict[str, Callable[[Session, Envelope], None]] = {
        USER_REGISTERED: on_user_event,
        USER_UPDATED: on_user_event,
        USER_DEACTIVATED: on_user_event,
        APPOINTMENT_BOOKED: on_appointment_event,
        APPOINTMENT_STATUS_CHANGED: on_appointment_event,
        APPOINTMENT_CANCELLED: on_appointment_event,
        APPOINTMENT_RESCHEDULED: on_appointment_event,
        WAITLIST_OFFER: on_waitlist_offered,
    }
    return with_token_revocations(handlers)


# The event types the migrate job binds (``notification migrate``); the app's handlers are
# ``consumed(mail)`` of its settings.
CONSUMED: dict[str, Handler] = consumed(None)
