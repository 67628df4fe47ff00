"""The waitlist's domain errors and their HTTP statuses."""

from chassis.errors import DomainError


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


STATUS_OF: dict[type[DomainError], int] = {
    InvalidWaitlistRange: 422,
    DoctorNotFound: 404,
    AlreadyWaiting: 409,
    WaitlistEntryNotFound: 404,
}
