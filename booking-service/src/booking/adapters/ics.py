"""Writing a calendar feed (RFC 5545) with the ``icalendar`` package; pure, no I/O."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from icalendar import Calendar, Event

# What a feed keeps: cancelled appointments for this long after the cancellation, and no
# appointment that ended longer ago than this.
KEPT_FOR = timedelta(days=30)

# The appointment's status as an event's STATUS; a status not listed is not in a feed.
EVENT_STATUS = {"pending": "TENTATIVE", "confirmed": "CONFIRMED", "cancelled": "CANCELLED"}


@dataclass(frozen=True, slots=True)
class FeedItem:
    """One appointment as a feed shows it."""

    appointment_id: int
    start_time: datetime
    end_time: datetime
    status: str
    other_party: str
    revision: int
    updated_at: datetime


def in_feed(status: str, *, end_time: datetime, updated_at: datetime, now: datetime) -> bool:
    """Active appointments, and those cancelled within ``KEPT_FOR``, that ended at most ``KEPT_FOR`` ago."""
    if end_time < now - KEPT_FOR or status not in EVENT_STATUS:
        return False
    return status != "cancelled" or updated_at >= now - KEPT_FOR


def summary(other_party: str) -> str:
    return f"Appointment with {other_party}" if other_party else "Appointment"


def render_feed(items: Iterable[FeedItem], *, host: str, name: str) -> bytes:
    """The feed: one VEVENT per item, with a UID stable across changes and times in UTC."""
    calendar = Calendar()
    calendar.add("prodid", "-//Clinic//Appointments//EN")
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("x-wr-calname", name)
    for item in items:
        event = Event()
        event.add("uid", f"appointment-{item.appointment_id}@{host}")
        event.add("dtstamp", item.updated_at.astimezone(UTC))
        event.add("last-modified", item.updated_at.astimezone(UTC))
        event.add("dtstart", item.start_time.astimezone(UTC))
        event.add("dtend", item.end_time.astimezone(UTC))
        event.add("summary", summary(item.other_party))
        event.add("status", EVENT_STATUS[item.status])
        event.add("sequence", item.revision)
        calendar.add_component(event)
    return calendar.to_ical()
