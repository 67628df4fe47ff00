"""The waitlist's event contract: ``booking.waitlist.offered`` (published) and scheduling's
timeslot events it consumes (``released`` and ``created``: a timeslot became bookable; their
handlers are in ``handlers.py``).

``booking.waitlist.offered`` carries ``{"entry": <the entry as the API shows it, with its
offer>, "patient_id"}`` (contracts/events/booking.waitlist.offered.schema.json).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from chassis.messaging import add_event

if TYPE_CHECKING:
    from booking.waitlist.services import EntryView

PRODUCER = "booking"
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
