"""Use cases of the consumer: what identity's and booking's events change here.

Each runs in the transaction that records the event in the inbox, so what it writes (the
local view of users and appointments, one delivery row per subscription, one mail row per
recipient) exists exactly when the event counts as processed: nothing is sent from here.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import String, Text, bindparam, case, func, literal, null, select
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.orm import Session

from notification.domain import ALL_EVENTS, Recipient, mail_recipients
from notification.models import Appointment, Mail, User, WebhookDelivery, WebhookSubscription
from notification.services.deliveries import deliveries_due
from notification.services.mails import mails_due

_TEXT = Text()
_TYPES = ARRAY(String(32))


@dataclass(frozen=True, slots=True)
class MailPolicy:
    """Whether mails are written (SMTP configured) and the domain of their Message-IDs."""

    domain: str


@dataclass(frozen=True, slots=True)
class AppointmentFacts:
    """An appointment as one of booking's events describes it."""

    id: int
    timeslot_id: int
    doctor_id: int
    patient_id: int
    start_time: datetime
    end_time: datetime
    status: str
    reason: str = ""
    cancellation_reason: str | None = None


def remember_user(
    session: Session,
    user_id: int,
    *,
    revision: int,
    role: str,
    full_name: str | None,
    is_active: bool,
    email: str | None,
) -> None:
    """Keep the newest facts of a user (an event older than the row's revision changes nothing)."""
    changes: dict[str, Any] = {"revision": revision, "role": role, "is_active": is_active}
    # An event without the name or the address (a deactivation) keeps the ones known.
    if full_name is not None:
        changes["full_name"] = full_name
    if email is not None:
        changes["email"] = email
    statement = insert(User).values({"id": user_id, "full_name": "", "email": None, **changes})
    statement = statement.on_conflict_do_update(
        index_elements=[User.id], set_=changes, where=User.revision < statement.excluded.revision
    )
    session.execute(statement)


@dataclass(frozen=True, slots=True)
class Applied:
    """What applying an event left: the local appointment's booking and last-change times, and
    whether the event's facts were the newest (an older one is news for webhooks, not for mail)."""

    booked_at: datetime
    changed_at: datetime
    newest: bool


def apply_appointment(
    session: Session, facts: AppointmentFacts, *, occurred_at: datetime, booked: bool = False
) -> Applied:
    """Bring the local appointment up to ``facts``.

    Events of one appointment may arrive out of order: only one newer than the row's last
    change is applied (an older one is still news for webhooks, not for the row or for mail).
    """
    inserted = session.execute(
        _INSERT_APPOINTMENT,
        {
            "p_id": facts.id,
            "p_timeslot_id": facts.timeslot_id,
            "p_doctor_id": facts.doctor_id,
            "p_patient_id": facts.patient_id,
            "p_start_time": facts.start_time,
            "p_end_time": facts.end_time,
            "p_status": facts.status,
            "p_cancellation_reason": facts.cancellation_reason,
            "p_occurred_at": occurred_at,
        },
    ).first()
    if inserted is not None:  # the first event of this appointment: the row is these facts
        return Applied(booked_at=occurred_at, changed_at=occurred_at, newest=True)
    appointment = session.get(Appointment, facts.id, with_for_update=True, populate_existing=True)
    assert appointment is not None
    if booked:
        appointment.booked_at = min(appointment.booked_at, occurred_at)
    if facts.start_time == appointment.start_time:
        # An older event at the same time (the booking, heard after a later change): the
        # appointment has been at its time since then at least, as its reminders must know.
        appointment.scheduled_at = min(appointment.scheduled_at, occurred_at)
    if occurred_at < appointment.changed_at:
        return Applied(appointment.booked_at, appointment.changed_at, newest=False)
    if appointment.start_time != facts.start_time:
        appointment.scheduled_at = occurred_at
    appointment.timeslot_id = facts.timeslot_id
    appointment.start_time = facts.start_time
    appointment.end_time = facts.end_time
    appointment.status = facts.status
    appointment.cancellation_reason = facts.cancellation_reason
    appointment.changed_at = occurred_at
    return Applied(appointment.booked_at, appointment.changed_at, newest=True)


# Built once: the consumer runs it for every appointment event (``make bench`` rows 6 and 10);
# built per event, and through the ORM's bulk insert, it cost more than running it. The first
# event of an appointment needs no second read: the row is what it inserted.
_APPOINTMENTS = Appointment.__table__
_INSERT_APPOINTMENT = (
    insert(_APPOINTMENTS)
    .values(
        id=bindparam("p_id"),
        timeslot_id=bindparam("p_timeslot_id"),
        doctor_id=bindparam("p_doctor_id"),
        patient_id=bindparam("p_patient_id"),
        start_time=bindparam("p_start_time"),
        end_time=bindparam("p_end_time"),
        status=bindparam("p_status"),
        cancellation_reason=bindparam("p_cancellation_reason"),
        booked_at=bindparam("p_occurred_at"),
        scheduled_at=bindparam("p_occurred_at"),
        changed_at=bindparam("p_occurred_at"),
    )
    .on_conflict_do_nothing(index_elements=[_APPOINTMENTS.c.id])
    .returning(_APPOINTMENTS.c.id)
)


def appointment_body(session: Session, applied: Applied, facts: AppointmentFacts) -> dict[str, Any]:
    """The ``appointment`` of a webhook payload: the API's appointment as the event described it
    (its ``reason`` too; empty for an event published before booking sent it)."""
    names = dict(
        session.execute(_NAMES, {"p_doctor_id": facts.doctor_id, "p_patient_id": facts.patient_id}).all()
    )
    return {
        "id": facts.id,
        "timeslot_id": facts.timeslot_id,
        "doctor_id": facts.doctor_id,
        "patient_id": facts.patient_id,
        "doctor_name": names.get(facts.doctor_id, ""),
        "patient_name": names.get(facts.patient_id, ""),
        "start_time": _iso(facts.start_time),
        "end_time": _iso(facts.end_time),
        "status": facts.status,
        "reason": facts.reason,
        "cancellation_reason": facts.cancellation_reason,
        "created_at": _iso(applied.booked_at),
        "updated_at": _iso(applied.changed_at),
    }


# Built once: the consumer runs it for every appointment event (``make bench`` rows 6 and 10);
# built per event (an ORM select with an IN list), it was a quarter of the consumer's time.
_USERS = User.__table__
_NAMES = select(_USERS.c.id, _USERS.c.full_name).where(
    _USERS.c.id.in_([bindparam("p_doctor_id"), bindparam("p_patient_id")])
)


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def queue_deliveries(
    session: Session, *, event_id: uuid.UUID, event_type: str, occurred_at: datetime, data: dict[str, Any]
) -> int:
    """One pending delivery of this event for each subscription to its type; how many.

    One statement over the subscriptions, so a subscription created or changed concurrently
    is either in or out, never half; a repeated event adds nothing (one per subscription).
    A paused subscription's delivery is written not due (``next_attempt_at`` NULL): resuming
    makes it due (``services/subscriptions.py``). The subscriptions are read with the lock the
    foreign key takes anyway (``FOR KEY SHARE``), so a pause or a resume committing meanwhile
    is waited for and seen: never a due row of a paused subscription, nor a resumed one's row
    left not due. Only when it queued one is the webhook worker woken (an event nobody
    subscribed to costs one statement, not a claim).
    """
    payload = {"type": event_type, "timestamp": _iso(occurred_at), "data": data}
    queued = session.execute(
        _QUEUE_DELIVERIES,
        {
            "p_event_id": event_id,
            "p_event_type": event_type,
            "p_payload": payload,
            "p_types": [event_type, ALL_EVENTS],
        },
    ).all()
    if queued:
        deliveries_due(session)
    return len(queued)


# Built once: the consumer runs it for every event (``make bench`` rows 6 and 10). On the table,
# not the ORM class: an ORM bulk insert from a SELECT reports no row count and takes no RETURNING.
_DELIVERIES = WebhookDelivery.__table__
_QUEUE_DELIVERIES = (
    insert(_DELIVERIES)
    .from_select(
        [
            "subscription_id",
            "event_id",
            "event_type",
            "webhook_id",
            "payload",
            "status",
            "attempts",
            "failures",
            "next_attempt_at",
        ],
        select(
            WebhookSubscription.id,
            bindparam("p_event_id", type_=WebhookDelivery.event_id.type),
            bindparam("p_event_type", type_=WebhookDelivery.event_type.type),
            func.concat("msg_", func.replace(func.gen_random_uuid().cast(type_=_TEXT), "-", "")),
            bindparam("p_payload", type_=WebhookDelivery.payload.type),
            literal("pending"),
            literal(0),
            literal(0),
            # A paused subscription's deliveries are written too, not due: they wait until it is
            # active again, out of the claim's way (ix_webhook_deliveries_due up to now()).
            case((WebhookSubscription.is_active, func.now()), else_=null()),
        )
        .where(WebhookSubscription.event_types.overlap(bindparam("p_types", type_=_TYPES)))
        .with_for_update(read=True, key_share=True),
    )
    .on_conflict_do_nothing(constraint="uq_webhook_deliveries_subscription_event")
    .returning(_DELIVERIES.c.id)
)


def queue_mails(
    session: Session,
    policy: MailPolicy | None,
    *,
    key: str,
    kind: str,
    appointment_id: int,
    recipients: dict[Recipient, int],
    context: dict[str, Any],
) -> int:
    """One pending mail per recipient of this kind of news (none without SMTP); how many new."""
    if policy is None:
        return 0
    rows = [
        {
            "key": f"{key}:{role.value}",
            "kind": kind,
            "recipient_id": recipients[role],
            "recipient_role": role.value,
            "appointment_id": appointment_id,
            "context": context,
            "message_id": f"<{uuid.uuid4().hex}@{policy.domain}>",
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": func.now(),
        }
        for role in mail_recipients(kind)
    ]
    if not rows:
        return 0
    statement = insert(Mail).values(rows).on_conflict_do_nothing(index_elements=[Mail.key]).returning(Mail.id)
    queued = len(session.execute(statement).all())
    if queued:
        mails_due(session)
    return queued
