"""The waitlist's rules, without I/O: which ranges may be joined, and an offer's life.

An offer is ``open`` while its timeslot is held for the entry's patient; it ends
``accepted`` (the patient booked it, which ends the entry), ``expired`` (its time ran out:
it passes to the next entry) or ``withdrawn`` (the patient left, or the hold was refused).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from enum import StrEnum

from booking.waitlist.errors import InvalidWaitlistRange

# scheduling keeps an offer's hold this much longer than the offer: booking's own sweeper
# releases it at expiry, and scheduling's hold sweeper frees it only if booking never did
# (booking down for longer than this), so the two never race over a standing offer.
HOLD_GRACE = timedelta(seconds=60)


class OfferState(StrEnum):
    OPEN = "open"
    ACCEPTED = "accepted"
    EXPIRED = "expired"
    WITHDRAWN = "withdrawn"


class EndReason(StrEnum):
    LEFT = "left"
    BOOKED = "booked"


def check_range(date_from: date, date_to: date, *, today: date) -> None:
    """A range of clinic days may be joined when it is in order and not in the past (else 422)."""
    errors = []
    if date_from < today:
        errors.append({"field": "date_from", "message": "must not be in the past"})
    if date_to < date_from:
        errors.append({"field": "date_to", "message": "must not be before date_from"})
    elif date_to < today:
        errors.append({"field": "date_to", "message": "must not be in the past"})
    if errors:
        raise InvalidWaitlistRange(
            "The range must be today or later, and date_to not before date_from.", errors=errors
        )


def offer_expiry(now: datetime, offer_minutes: float) -> datetime:
    """Until when a new offer stands."""
    return now + timedelta(minutes=offer_minutes)


def hold_seconds(expires_at: datetime, now: datetime) -> int:
    """How long scheduling holds an offer's timeslot: to the offer's expiry, plus the grace."""
    return max(1, int((expires_at - now + HOLD_GRACE).total_seconds()) + 1)


def offer_stands(state: str, expires_at: datetime, now: datetime) -> bool:
    """An offer can be booked while it is open and has not expired (whether or not the sweeper ran)."""
    return state == OfferState.OPEN and now < expires_at
