"""scheduling-service domain errors (stable codes) and their HTTP statuses."""

from chassis.errors import DomainError


class TimeslotNotFound(DomainError):
    """No such timeslot, or it belongs to someone the caller may not see."""

    code = "timeslot_not_found"


class DoctorNotFound(DomainError):
    """No such doctor, or the doctor is deactivated."""

    code = "doctor_not_found"


class DoctorInactive(DomainError):
    """A doctor's token is still valid, but identity told us the account is inactive (or no doctor)."""

    code = "doctor_inactive"


class InvalidTimeslot(DomainError):
    """Ends before it starts, or too short or too long."""

    code = "invalid_timeslot"


class TimeslotInPast(DomainError):
    """A new timeslot must start in the future."""

    code = "timeslot_in_past"


class PatternTooLarge(DomainError):
    """A bulk pattern makes more timeslots than one call may create."""

    code = "pattern_too_large"


class EmptyPattern(DomainError):
    """A bulk pattern makes no timeslot at all."""

    code = "empty_pattern"


class InvalidFilter(DomainError):
    """Query filters that contradict each other (``date_to`` before ``date_from``)."""

    code = "invalid_filter"


class TimeslotOverlap(DomainError):
    """A doctor's timeslots never overlap."""

    code = "timeslot_overlap"


class TimeslotReserved(DomainError):
    """A held or booked timeslot cannot be deleted."""

    code = "timeslot_reserved"


class TimeslotNotAvailable(DomainError):
    """Held or booked by another reservation."""

    code = "timeslot_not_available"


class CannotBookOwnTimeslot(DomainError):
    """A doctor cannot book their own timeslot."""

    code = "cannot_book_own_timeslot"


class TimeslotStarted(DomainError):
    """Only timeslots that start in the future can be held."""

    code = "timeslot_started"


class OtherDoctor(DomainError):
    """A hold for a reschedule, of a timeslot of another doctor than the appointment's."""

    code = "other_doctor"


class OutsideBookingWindow(DomainError):
    """The timeslot starts outside the doctor's booking policy."""

    code = "outside_booking_policy"


class TooSoon(OutsideBookingWindow):
    """The timeslot starts sooner than the doctor's minimum notice."""

    code = "booking_notice"


class TooFarAhead(OutsideBookingWindow):
    """The timeslot starts beyond the doctor's booking horizon."""

    code = "booking_horizon"


STATUS_OF: dict[type[DomainError], int] = {
    TimeslotNotFound: 404,
    DoctorNotFound: 404,
    DoctorInactive: 403,
    InvalidTimeslot: 422,
    TimeslotInPast: 422,
    PatternTooLarge: 422,
    EmptyPattern: 422,
    InvalidFilter: 422,
    TimeslotStarted: 422,
    OtherDoctor: 422,
    OutsideBookingWindow: 422,
    TimeslotOverlap: 409,
    TimeslotReserved: 409,
    TimeslotNotAvailable: 409,
    CannotBookOwnTimeslot: 409,
}
