"""The rules of booking: the appointment status machine and who may cancel what.

Pure functions over plain values, so they are tested without a database or HTTP.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from booking.errors import (
    AppointmentAlreadyStarted,
    AppointmentNotStarted,
    BookingNotAllowed,
    IllegalStatusChange,
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


def check_cancellation(current: AppointmentStatus, *, start_time: datetime, now: datetime) -> None:
    """Allow a cancellation by DELETE: only an active appointment that has not started."""
    if current not in ACTIVE_STATUSES:
        raise IllegalStatusChange(
            f"Only a pending or confirmed appointment can be cancelled; this one is {current}.",
            current_status=str(current),
        )
    if now >= start_time:
        raise AppointmentAlreadyStarted(
            "This appointment has already started and can no longer be cancelled.",
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
