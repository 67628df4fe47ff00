"""The rules of notifications: what each event means to subscribers and mail readers, when to
try again, which targets may be called and when a reminder is due. No I/O here."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

# --- webhook event types -----------------------------------------------------------------

BOOKED = "appointment.booked"
CONFIRMED = "appointment.confirmed"
CANCELLED = "appointment.cancelled"
RESCHEDULED = "appointment.rescheduled"
COMPLETED = "appointment.completed"
NO_SHOW = "appointment.no_show"
WAITLIST_OFFERED = "waitlist.offered"
EVENT_TYPES = (BOOKED, CONFIRMED, CANCELLED, RESCHEDULED, COMPLETED, NO_SHOW, WAITLIST_OFFERED)
ALL_EVENTS = "*"

# An appointment status change is news of its own kind (pending is the booking itself).
STATUS_EVENT_TYPES = {"confirmed": CONFIRMED, "completed": COMPLETED, "no_show": NO_SHOW}

ACTIVE_STATUSES = frozenset({"pending", "confirmed"})

# Mails go out for these (a completed or missed appointment needs no letter).
MAILED_EVENT_TYPES = frozenset({BOOKED, CONFIRMED, RESCHEDULED, CANCELLED})
REMINDER = "appointment.reminder"

URL_MAX_LENGTH = 2000
DESCRIPTION_MAX_LENGTH = 500
# The receiver's answer kept in the delivery record: enough to tell what went wrong, no more.
RESPONSE_EXCERPT_LENGTH = 200


def check_event_types(event_types: Sequence[str]) -> list[str]:
    """The subscribed types, deduplicated in order; ValueError naming what is wrong."""
    if not event_types:
        raise ValueError("subscribe to at least one event type")
    if ALL_EVENTS in event_types:
        if len(event_types) > 1:
            raise ValueError('"*" stands alone: it already means every event type')
        return [ALL_EVENTS]
    unknown = [t for t in event_types if t not in EVENT_TYPES]
    if unknown:
        raise ValueError(f"unknown event type {unknown[0]!r}; known: {', '.join(EVENT_TYPES)} or '*'")
    return list(dict.fromkeys(event_types))


def subscribed(event_types: Iterable[str], event_type: str) -> bool:
    return ALL_EVENTS in event_types or event_type in event_types


# --- retries -------------------------------------------------------------------------------

# Delays after each failed attempt (seconds): the first retry within seconds, then growing, 8
# attempts over about 27 hours (the Standard Webhooks schedule), then the delivery is failed.
DEFAULT_RETRY_DELAYS: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)


def next_attempt_delay(delays: Sequence[float], failed_attempts: int) -> timedelta | None:
    """The wait before the next attempt after ``failed_attempts`` failures; None: give up."""
    if failed_attempts < 1 or failed_attempts > len(delays):
        return None
    return timedelta(seconds=delays[failed_attempts - 1])


def is_success(status_code: int) -> bool:
    return 200 <= status_code < 300


# --- webhook targets -------------------------------------------------------------------------

ALLOWED_SCHEMES = ("http", "https")


class TargetRefused(ValueError):
    """A webhook URL that must not be called (scheme, address)."""


def check_target_address(address: str, *, allow_private: bool) -> None:
    """Refuse an address a webhook must not reach: loopback, private, link-local (the cloud
    metadata service) and the like, unless the deployment allows private targets. Multicast
    and unspecified addresses are never a receiver."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_multicast or ip.is_unspecified:
        raise TargetRefused(f"{ip} is not an address a receiver can have")
    if allow_private:
        return
    if ip.is_loopback or ip.is_link_local or ip.is_private or ip.is_reserved or not ip.is_global:
        raise TargetRefused(
            "the URL leads to a loopback, private or link-local address, which webhooks may not call"
        )


# --- mail --------------------------------------------------------------------------------------


class Recipient(StrEnum):
    PATIENT = "patient"
    DOCTOR = "doctor"


def mail_recipients(event_type: str) -> tuple[Recipient, ...]:
    """Who gets a mail for this webhook event type (reminders go to the patient only)."""
    if event_type == REMINDER:
        return (Recipient.PATIENT,)
    if event_type in MAILED_EVENT_TYPES:
        return (Recipient.PATIENT, Recipient.DOCTOR)
    return ()


def reminder_due(*, start_time: datetime, scheduled_at: datetime, hours: int, now: datetime) -> bool:
    """Is the ``hours`` reminder of an active appointment due now?

    Due from ``hours`` before the start until the start; never when the appointment got this
    start time inside that window (the booking or rescheduling mail has just told the patient).
    """
    remind_at = start_time - timedelta(hours=hours)
    return remind_at <= now < start_time and scheduled_at < remind_at


@dataclass(frozen=True, slots=True)
class SmtpServer:
    host: str
    port: int
    username: str | None
    password: str | None
    tls: bool
    starttls: bool
    # PEM file of the CA(s) that signed the server's certificate, instead of the system's (None).
    ca_file: str | None = None


def message_id(key: str, domain: str) -> str:
    """A mail's Message-ID: fixed for the row, so a mail sent again is recognisable as the same."""
    return f"<{key}@{domain}>"
