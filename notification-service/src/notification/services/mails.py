"""The mail worker's transactions, and the reminder sweep that writes reminder mails.

A mail is sent once: it is claimed (``sending``, ``claimed_until``) before anything is sent,
so no two workers or replicas send it; ``handed_over_at`` is committed just before the server
is given the message, and only while the claim still holds. A mail whose claim ran out before
that moment was never handed over and is tried again; one whose claim ran out after it is
``in_doubt`` (the server may have it) and is not sent again. docs/notifications.md explains
what this can and cannot promise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Interval, and_, bindparam, func, or_, select, text, update
from sqlalchemy.orm import Session

from chassis.db import Database
from chassis.timezones import utcnow
from chassis.workers import due_now
from notification.domain import ACTIVE_STATUSES, REMINDER, next_attempt_delay
from notification.models import Appointment, Mail, User

# What the mail worker is woken for when a transaction makes mails due (chassis.workers).
MAILS_DUE = "mails"


def mails_due(session: Session) -> None:
    """Once this transaction commits, the mail worker of this process runs at once."""
    due_now(session, MAILS_DUE)


@dataclass(frozen=True, slots=True)
class ClaimedMail:
    id: int
    kind: str
    recipient_id: int
    recipient_role: str
    appointment_id: int | None
    context: dict[str, Any]
    message_id: str
    attempts: int
    queued_at: datetime | None = None  # when the mail was written (its lag's start)


@dataclass(frozen=True, slots=True)
class MailFacts:
    """What sending a claimed mail needs to know now: the address, the names, whether it stands."""

    address: str | None
    recipient_active: bool
    names: dict[str, str]
    # A reminder of an appointment since cancelled or moved: not sent.
    obsolete: bool


_CLAIMABLE = or_(
    and_(Mail.status == "pending", Mail.next_attempt_at <= func.now()),
    # A claim that ran out before the hand-over: the worker died before the server had the mail.
    and_(Mail.status == "sending", Mail.claimed_until < func.now(), Mail.handed_over_at.is_(None)),
)
_DUE = (
    select(Mail.id)
    .where(_CLAIMABLE)
    .order_by(Mail.next_attempt_at)
    .limit(bindparam("p_limit"))
    .with_for_update(skip_locked=True)
)
_CLAIM = (
    update(Mail)
    .where(Mail.id.in_(_DUE.scalar_subquery()))
    .values(
        status="sending",
        attempts=Mail.attempts + 1,
        last_attempt_at=func.now(),
        claimed_until=func.now() + bindparam("p_lease", type_=Interval()),
        handed_over_at=None,
    )
    .returning(
        Mail.id,
        Mail.kind,
        Mail.recipient_id,
        Mail.recipient_role,
        Mail.appointment_id,
        Mail.context,
        Mail.message_id,
        Mail.attempts,
        Mail.created_at.label("queued_at"),
    )
)
# A claim that ran out after the hand-over: the server may have the mail; never sent again.
_IN_DOUBT = (
    update(Mail)
    .where(Mail.status == "sending", Mail.claimed_until < func.now(), Mail.handed_over_at.is_not(None))
    .values(
        status="in_doubt",
        claimed_until=None,
        last_error="interrupted while the mail server took it: not sent again, so it is never sent twice",
    )
)


def claim_mails(db: Database, limit: int, lease: timedelta) -> list[ClaimedMail]:
    """Settle the claims that ran out, then claim up to ``limit`` due mails for ``lease``."""
    with db.transaction() as session:
        session.execute(_IN_DOUBT)
        if limit < 1:
            return []
        rows = session.execute(_CLAIM, {"p_limit": limit, "p_lease": lease}).all()
    return [ClaimedMail(**row._mapping) for row in rows]


def mail_facts(db: Database, mail: ClaimedMail) -> MailFacts:
    appointment = mail.context["appointment"]
    with db.sessions() as session:
        users = {
            user.id: user
            for user in session.scalars(
                select(User).where(
                    User.id.in_([mail.recipient_id, appointment["doctor_id"], appointment["patient_id"]])
                )
            )
        }
        current = session.get(Appointment, mail.appointment_id) if mail.appointment_id is not None else None
    recipient = users.get(mail.recipient_id)
    # News of an appointment that is over helps nobody (a mail server down for days, then back).
    over = "end_time" in appointment and datetime.fromisoformat(appointment["end_time"]) <= utcnow()
    obsolete = over or (
        mail.kind == REMINDER
        and (
            current is None
            or current.status not in ACTIVE_STATUSES
            or current.start_time != datetime.fromisoformat(appointment["start_time"])
        )
    )
    return MailFacts(
        address=recipient.email if recipient else None,
        recipient_active=recipient.is_active if recipient else True,
        names={
            "doctor": users[appointment["doctor_id"]].full_name if appointment["doctor_id"] in users else "",
            "patient": users[appointment["patient_id"]].full_name
            if appointment["patient_id"] in users
            else "",
        },
        obsolete=obsolete,
    )


def mark_handed_over(db: Database, mail: ClaimedMail) -> bool:
    """Record that the server is about to get the mail; False when this claim no longer holds."""
    with db.transaction() as session:
        result = session.execute(
            update(Mail)
            .where(
                Mail.id == mail.id,
                Mail.status == "sending",
                Mail.attempts == mail.attempts,
                Mail.claimed_until > func.now(),
            )
            .values(handed_over_at=func.now())
        )
    return result.rowcount == 1


def mark_sent(db: Database, mail: ClaimedMail) -> None:
    _finish(db, mail, status="sent", sent_at=func.now(), last_error=None)


def mark_skipped(db: Database, mail: ClaimedMail, reason: str) -> None:
    _finish(db, mail, status="skipped", last_error=reason)


def mark_in_doubt(db: Database, mail: ClaimedMail, reason: str) -> None:
    _finish(db, mail, status="in_doubt", last_error=reason[:300])


def mark_not_sent(
    db: Database, mail: ClaimedMail, reason: str, retry_delays: Sequence[float], *, server_down: bool = False
) -> None:
    """The server did not take it (or it could not be written yet): due again, or failed.

    A mail server that is down (or answers "try again later", or refuses the clinic's login)
    only delays mail (spec: "it never loses it"): past the schedule such a mail is tried every
    last delay, until its appointment is over (``mail_facts``). Anything else (a refusal for
    good, no address known for the recipient) fails once the schedule is spent.
    """
    delay = next_attempt_delay(retry_delays, mail.attempts)
    if delay is None and server_down:
        delay = timedelta(seconds=retry_delays[-1])
    if delay is None:
        _finish(db, mail, status="failed", last_error=reason[:300])
    else:
        _finish(
            db,
            mail,
            status="pending",
            next_attempt_at=func.now() + delay,
            handed_over_at=None,
            last_error=reason[:300],
        )


def _finish(db: Database, mail: ClaimedMail, **values: Any) -> None:
    with db.transaction() as session:
        session.execute(
            update(Mail)
            .where(Mail.id == mail.id, Mail.status == "sending", Mail.attempts == mail.attempts)
            .values(claimed_until=None, **values)
        )


# Reminders: one mail per active appointment, start time and reminder hour, written when due
# (domain.reminder_due, in SQL); the key makes a second sweep, or another replica's, add none.
# When several are due at once (the service was down for a while) only the nearest one goes.
_QUEUE_REMINDERS = text(
    """
INSERT INTO mails (key, kind, recipient_id, recipient_role, appointment_id, context, message_id,
                   status, attempts, next_attempt_at)
SELECT DISTINCT ON (a.id)
       format('reminder:%s:%s:%s:patient', a.id, extract(epoch FROM a.start_time)::bigint, h.hours),
       :kind, a.patient_id, 'patient', a.id,
       jsonb_build_object(
           'appointment', jsonb_build_object(
               'id', a.id, 'timeslot_id', a.timeslot_id, 'doctor_id', a.doctor_id,
               'patient_id', a.patient_id, 'status', a.status,
               'start_time', to_jsonb(a.start_time), 'end_time', to_jsonb(a.end_time)),
           'hours', h.hours),
       format('<%s@%s>', replace(gen_random_uuid()::text, '-', ''), CAST(:domain AS text)),
       'pending', 0, now()
FROM appointments a
CROSS JOIN unnest(CAST(:hours AS integer[])) AS h(hours)
WHERE a.status IN ('pending', 'confirmed')
  AND a.start_time > now()
  AND a.start_time - make_interval(hours => h.hours) <= now()
  AND a.scheduled_at < a.start_time - make_interval(hours => h.hours)
ORDER BY a.id, h.hours
ON CONFLICT (key) DO NOTHING
"""
)


def queue_due_reminders(db: Database, hours: Sequence[int], domain: str) -> int:
    """Write the reminder mails that are due now; how many were new."""
    if not hours:
        return 0
    with db.transaction() as session:
        result = session.execute(_QUEUE_REMINDERS, {"kind": REMINDER, "hours": list(hours), "domain": domain})
        if result.rowcount:
            mails_due(session)
    return result.rowcount or 0
