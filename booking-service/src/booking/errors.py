"""booking-service domain errors and their HTTP statuses.

Each error has a stable ``code`` clients may rely on; ``STATUS_OF`` is the one
place that decides which HTTP status it becomes, but for ``TimeslotRefused``, which relays
scheduling's own status and code (scheduling's errors are not declared twice).
"""

from chassis.errors import DomainError


class AccountDeactivated(DomainError):
    """The caller's account was deactivated (their token is about to stop working everywhere)."""

    code = "account_deactivated"


class AppointmentNotFound(DomainError):
    """No such appointment, or one the caller may not see (never leak existence)."""

    code = "appointment_not_found"


class ReservationNotFound(DomainError):
    """No appointment was stored for this reservation (the hold was abandoned)."""

    code = "reservation_not_found"


class BookingNotAllowed(DomainError):
    """Someone other than a patient tried to book."""

    code = "forbidden"


class TimeslotRefused(DomainError):
    """The timeslot cannot be booked: scheduling refused the hold (its status and code relayed, as
        ``contracts/http/scheduling.timeslot.hold.json`` lists them: 404 ``timeslot_not_found``, 409
        ``timeslot_not_available`` or ``cannot_book_own_timeslot``, 422 ``timeslot_started``, and with
    the timeslot named as the field, ``booking_notice``, ``booking_horizon``, ``other_doctor``), or
        booking itself found the same (a doctor known to be deactivated, a timeslot already taken)."""

    def __init__(self, status: int, code: str, detail: str, **extra: object) -> None:
        super().__init__(detail, **extra)
        self.status = status
        self.code = code


class SchedulingUnavailable(DomainError):
    """scheduling-service did not answer (down, timed out, 5xx); nothing was booked."""

    code = "scheduling_unavailable"


class HoldExpired(DomainError):
    """The appointment's transaction outlasted its hold, which scheduling's sweeper gave up (booking
    had answered that nothing was stored): refused at commit, nothing stored; retrying is safe."""

    code = "hold_expired"


class IllegalStatusChange(DomainError):
    """The status machine does not allow this change from the current status."""

    code = "illegal_status_change"


class AppointmentNotStarted(DomainError):
    """``completed`` and ``no_show`` only make sense once the appointment has started."""

    code = "appointment_not_started"


class AppointmentAlreadyStarted(DomainError):
    """An appointment that has started can no longer be cancelled by DELETE."""

    code = "appointment_started"


class InvalidWaitlistRange(DomainError):
    """The range of days is reversed or in the past."""

    code = "invalid_waitlist_range"


class DoctorNotFound(DomainError):
    """No active doctor has this id."""

    code = "doctor_not_found"


class AlreadyWaiting(DomainError):
    """The patient already waits for this doctor over exactly this range."""

    code = "already_waiting"


class WaitlistEntryNotFound(DomainError):
    """No such entry, or one the caller may not see."""

    code = "waitlist_entry_not_found"


class FeedNotFound(DomainError):
    """No feed has this secret (never had, or its URL was rotated), or its user is deactivated."""

    code = "feed_not_found"


class TooManyActiveAppointments(DomainError):
    """The doctor's ``max_active_per_patient``: the patient has that many upcoming appointments."""

    code = "too_many_active_appointments"


class CancellationTooLate(DomainError):
    """A patient cancels or moves an appointment later than the doctor's cancellation notice."""

    code = "cancellation_notice"


STATUS_OF: dict[type[DomainError], int] = {
    AccountDeactivated: 401,
    AppointmentNotFound: 404,
    ReservationNotFound: 404,
    SchedulingUnavailable: 503,
    HoldExpired: 503,
    BookingNotAllowed: 403,
    IllegalStatusChange: 409,
    AppointmentNotStarted: 409,
    AppointmentAlreadyStarted: 409,
    InvalidWaitlistRange: 422,
    DoctorNotFound: 404,
    AlreadyWaiting: 409,
    WaitlistEntryNotFound: 404,
    FeedNotFound: 404,
    TooManyActiveAppointments: 409,
    CancellationTooLate: 409,
}
