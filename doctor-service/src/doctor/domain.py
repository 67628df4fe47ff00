"""The rules of doctor profiles, free of web, database and broker code.

A profile belongs to a user whose role is ``doctor``; it is listed while that
user is a doctor and active. Identity owns the user; this service keeps a read
model of it, fed by identity's events, which may arrive late, twice or out of
order: each carries the user's ``revision``, and only a newer revision is applied.
"""

from __future__ import annotations

from dataclasses import dataclass

DOCTOR_ROLE = "doctor"

FULL_NAME_MAX_LENGTH = 150
SPECIALTY_MAX_LENGTH = 100
BIO_MAX_LENGTH = 2000
MAX_YEARS_OF_EXPERIENCE = 80
SEARCH_MAX_LENGTH = 100

# Bounds of the booking policy's numbers (a year of notice, ten years ahead).
MAX_NOTICE_MINUTES = 525_600
MAX_HORIZON_DAYS = 3650
MAX_ACTIVE_PER_PATIENT = 10_000
# A doctor who never set a policy: no notice, no horizon, no cancellation notice, no limit.
NO_POLICY = {
    "min_notice_minutes": 0,
    "booking_horizon_days": None,
    "cancellation_notice_minutes": 0,
    "max_active_per_patient": None,
}
POLICY_FIELDS = (
    "min_notice_minutes",
    "booking_horizon_days",
    "cancellation_notice_minutes",
    "max_active_per_patient",
)

# Ids are PostgreSQL bigints; a larger number in a URL cannot name a doctor.
MAX_DOCTOR_ID = 2**63 - 1


@dataclass(frozen=True, slots=True)
class UserFacts:
    """What one identity event says about a user, as far as doctor profiles care."""

    user_id: int
    revision: int
    role: str
    is_active: bool
    full_name: str | None = None  # identity.user.deactivated does not carry the name
    role_changed: bool = False

    @property
    def is_listed_doctor(self) -> bool:
        """Whether these facts make the user's profile visible to patients and admins."""
        return self.role == DOCTOR_ROLE and self.is_active


def should_open_profile(facts: UserFacts) -> bool:
    """Whether facts about a user without a profile row call for one.

    A doctor gets a profile. A user whose role just changed gets one too, hidden
    when the new role is not doctor: the row remembers the revision, so that an
    older "registered as doctor" event arriving late cannot bring the profile back.
    """
    return facts.role == DOCTOR_ROLE or facts.role_changed


def is_stale(facts: UserFacts, applied_revision: int) -> bool:
    """Whether the facts are no newer than what the profile already reflects."""
    return facts.revision <= applied_revision


def is_valid_doctor_id(doctor_id: int) -> bool:
    """Whether ``doctor_id`` could be a doctor's id at all (a positive bigint)."""
    return 0 < doctor_id <= MAX_DOCTOR_ID


def like_contains(term: str) -> str:
    """The search's pattern: ``term`` anywhere (ILIKE), its own ``%``, ``_`` and ``\\`` taken literally."""
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def name_prefix_patterns(term: str) -> tuple[str, str]:
    """FHIR's string search on a name (``Practitioner?name=``): ILIKE patterns of a name that starts
    with ``term`` and of a name one of whose words does, ``%``, ``_`` and ``\\`` taken literally."""
    prefix = like_contains(term)[1:]
    return prefix, "% " + prefix
