"""doctor-service domain errors and their HTTP statuses."""

from chassis.errors import DomainError


class DoctorNotFound(DomainError):
    """No listed doctor has this id (unknown, or hidden because the user is not an active doctor)."""

    code = "doctor_not_found"


class ProfileNotReady(DomainError):
    """The caller is a doctor whose profile has not arrived yet from identity's registration event."""

    code = "doctor_profile_not_ready"


class ProfileInactive(DomainError):
    """The caller's profile exists but is hidden (the account is no longer an active doctor)."""

    code = "doctor_profile_inactive"


STATUS_OF: dict[type[DomainError], int] = {
    DoctorNotFound: 404,
    ProfileNotReady: 404,
    ProfileInactive: 404,
}
