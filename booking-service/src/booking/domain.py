"""The rules of booking: the appointment status machine and who may cancel what.

Pure functions over plain values, so they are tested without a database or HTTP.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from enum import StrEnum

from booking.errors import (
    AppointmentAlreadyStarted,
    AppointmentNotStarted,
    BookingNotAllowed,
    IllegalStatusChange,
    InvalidWaitlistRange,
)

REASON_MAX_LENGTH = 500


class AppointmentStatus(StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    CANCELLED = "cancelled"
    COMPLETED = "completed"
    NO_SHOW = "no_show"


# An active appointment holds its timeslot; at most one per timeslot (a partial unique index).
ACTIVE_STATUSES: frozenset[AppointmentStatus] = frozenset(
    {AppointmentStatus.PENDING, AppointmentStatus.CONFIRMED}
)


def takes_timeslot(status: AppointmentStatus) -> bool:
    """Whether an appointment keeps its timeslot taken at scheduling (what the hold sweeper asks):
    every appointment but a cancelled one (a past one keeps it as history)."""
    return status is not AppointmentStatus.CANCELLED


TRANSITIONS: dict[AppointmentStatus, frozenset[AppointmentStatus]] = {
    AppointmentStatus.PENDING: frozenset({AppointmentStatus.CONFIRMED, AppointmentStatus.CANCELLED}),
    AppointmentStatus.CONFIRMED: frozenset(
        {AppointmentStatus.COMPLETED, AppointmentStatus.NO_SHOW, AppointmentStatus.CANCELLED}
    ),
    AppointmentStatus.CANCELLED: frozenset(),
    AppointmentStatus.COMPLETED: frozenset(),
    AppointmentStatus.NO_SHOW: frozenset(),
}

# Whether the patient came can only be known once the appointment has begun.
ONLY_AFTER_START: frozenset[AppointmentStatus] = frozenset(
    {AppointmentStatus.COMPLETED, AppointmentStatus.NO_SHOW}
)


class CancelledBy(StrEnum):
    """Who cancelled an appointment, as ``booking.appointment.cancelled`` reports it."""

    PATIENT = "patient"
    DOCTOR = "doctor"
    ADMIN = "admin"
    SYSTEM = "system"


def check_status_change(
    current: AppointmentStatus, new: AppointmentStatus, *, start_time: datetime, now: datetime
) -> None:
    """Allow ``current`` → ``new`` or raise: the status machine of spec/API.md."""
    if new not in TRANSITIONS[current]:
        allowed = sorted(TRANSITIONS[current])
        hint = f"; from {current} it can become {', '.join(allowed)}" if allowed else ""
        raise IllegalStatusChange(
            f"An appointment that is {current} cannot become {new}{hint}.",
            current_status=str(current),
        )
    if new in ONLY_AFTER_START and now < start_time:
        raise AppointmentNotStarted(
            f"An appointment can be marked {new} only once it has started.",
            current_status=str(current),
        )


def check_cancellation(
    current: AppointmentStatus, *, start_time: datetime, now: datetime, verb: str = "cancelled"
) -> None:
    """Allow a cancellation by DELETE (or, ``verb="rescheduled"``, a move to another timeslot):
    only an active appointment that has not started."""
    if current not in ACTIVE_STATUSES:
        raise IllegalStatusChange(
            f"Only a pending or confirmed appointment can be {verb}; this one is {current}.",
            current_status=str(current),
        )
    if now >= start_time:
        raise AppointmentAlreadyStarted(
            f"This appointment has already started and can no longer be {verb}.",
            current_status=str(current),
        )


def deactivation_reason(*, as_patient: bool) -> str:
    """The cancellation reason recorded when a user's account is deactivated."""
    whose = "patient's" if as_patient else "doctor's"
    return f"The {whose} account was deactivated."


def patient_booking(role: str, user_id: int) -> int:
    """Whom a booking is for: a patient books only for themselves (the route admits patients only;
    this is the rule, should another caller ever reach the use case)."""
    if role != "patient":
        raise BookingNotAllowed("Only patients book appointments, for themselves.")
    return user_id


def may_see(role: str, user_id: int, *, patient_id: int, doctor_id: int) -> bool:
    """Whether a caller may see (and so act on) an appointment: its patient, its doctor, an admin."""
    if role == "admin":
        return True
    if role == "doctor":
        return doctor_id == user_id
    return patient_id == user_id


# -- the waitlist ----------------------------------------------------------------------------
# An offer is ``open`` while its timeslot is held for the entry's patient; it ends ``accepted``
# (the patient booked it, which ends the entry), ``expired`` (its time ran out: it passes to the
# next entry) or ``withdrawn`` (the patient left, or the hold was refused).

# scheduling keeps an offer's hold this much longer than the offer: booking's own sweeper
# releases it at expiry, and scheduling's hold sweeper frees it only if booking never did
# (booking down for longer than this), so the two never race over a standing offer.
HOLD_GRACE = timedelta(seconds=60)


class OfferState(StrEnum):
    OPEN = "open"
    ACCEPTED = "accepted"
    EXPIRED = "expired"
    WITHDRAWN = "withdrawn"


# An offer in these states uses its hold: it still stands, or the appointment that accepted it
# holds the timeslot now. Only the hold of an offer that expired or was withdrawn may be released.
HOLDING_OFFER_STATES = frozenset({OfferState.OPEN, OfferState.ACCEPTED})


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
