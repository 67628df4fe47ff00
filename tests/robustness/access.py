"""The contract's access rules (spec/API.md), declared once.

Every public operation of every service is one row: who may call it and what a caller who
may gets. The authorization matrix is generated from these rows, the fuzzer runs each one
as each role, and a test compares them with the operations the services' OpenAPI
documents list through the gateway, so an endpoint added without a row fails the suite.

Callers: ``anonymous`` (no token), the three roles, and for operations on a resource with
an owner, the owner (the resource's patient or doctor) and a non-owner of that role.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Role = Literal["patient", "doctor", "admin"]
ROLES: tuple[Role, ...] = ("patient", "doctor", "admin")

# What a role may do on an operation: ANY resource, only resources it OWNS (others are 404,
# never 403: existence is not leaked), or nothing (403, the role may not use the endpoint).
ANY = "any"
OWN = "own"


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    success: int
    # Roles that may call it, and on which resources; roles not listed get 403.
    allowed: dict[Role, str] = field(default_factory=dict)
    # Public operations take no token (a token, if sent, is ignored).
    public: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return self.method, self.path

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def has_owner(self) -> bool:
        return OWN in self.allowed.values()

    def preferred_role(self) -> Role:
        """The role that exercises the operation best (an owner first): for stateful fuzzing."""
        for role in ("doctor", "patient", "admin") if self.has_owner else ("patient", "doctor", "admin"):
            if role in self.allowed:
                return role
        return "patient"


def _op(method: str, path: str, success: int, public: bool = False, **allowed: str) -> Operation:
    return Operation(method, path, success, allowed=allowed, public=public)  # type: ignore[arg-type]


EVERYONE = {"patient": ANY, "doctor": ANY, "admin": ANY}

OPERATIONS: tuple[Operation, ...] = (
    # identity: authentication
    _op("POST", "/api/auth/register/", 201, public=True),
    _op("POST", "/api/auth/login/", 200, public=True),
    _op("POST", "/api/auth/token/refresh/", 200, public=True),
    _op("GET", "/api/auth/me/", 200, **EVERYONE),
    _op("PATCH", "/api/auth/me/", 200, **EVERYONE),
    _op("POST", "/api/auth/logout/", 204, **EVERYONE),
    # identity: users (admin)
    _op("GET", "/api/users/", 200, admin=ANY),
    _op("GET", "/api/users/{user_id}/", 200, admin=ANY),
    _op("PATCH", "/api/users/{user_id}/", 200, admin=ANY),
    _op("DELETE", "/api/users/{user_id}/", 204, admin=ANY),
    # doctor
    _op("GET", "/api/doctors/", 200, patient=ANY, admin=ANY),
    _op("GET", "/api/doctors/{doctor_id}/", 200, patient=ANY, admin=ANY),
    _op("PATCH", "/api/doctors/{doctor_id}/", 200, admin=ANY),
    _op("GET", "/api/doctors/me/", 200, doctor=ANY),
    _op("PATCH", "/api/doctors/me/", 200, doctor=ANY),
    _op("GET", "/api/doctors/me/booking-policy/", 200, doctor=ANY),
    _op("PATCH", "/api/doctors/me/booking-policy/", 200, doctor=ANY),
    _op("GET", "/api/doctors/{doctor_id}/booking-policy/", 200, admin=ANY),
    _op("PATCH", "/api/doctors/{doctor_id}/booking-policy/", 200, admin=ANY),
    # scheduling
    _op("GET", "/api/doctors/{doctor_id}/timeslots/", 200, patient=ANY, admin=ANY),
    _op("POST", "/api/timeslots/", 201, doctor=ANY),
    _op("POST", "/api/timeslots/bulk/", 201, doctor=ANY),
    _op("GET", "/api/timeslots/", 200, doctor=ANY),
    _op("GET", "/api/timeslots/{timeslot_id}/", 200, doctor=OWN),
    _op("DELETE", "/api/timeslots/{timeslot_id}/", 204, doctor=OWN),
    # booking
    _op("POST", "/api/appointments/", 201, patient=ANY),
    _op("GET", "/api/appointments/me/", 200, patient=ANY, doctor=ANY),
    _op("GET", "/api/appointments/", 200, admin=ANY),
    _op("GET", "/api/appointments/{appointment_id}/", 200, patient=OWN, doctor=OWN, admin=ANY),
    _op("PATCH", "/api/appointments/{appointment_id}/status/", 200, doctor=OWN, admin=ANY),
    _op("DELETE", "/api/appointments/{appointment_id}/", 204, patient=OWN, admin=ANY),
    # booking: waitlist
    _op("POST", "/api/waitlist/", 201, patient=ANY),
    _op("GET", "/api/waitlist/me/", 200, patient=ANY),
    _op("DELETE", "/api/waitlist/{entry_id}/", 204, patient=OWN, admin=ANY),
    # booking: calendar feeds (the feed URL's secret is its credential)
    _op("GET", "/api/calendar/feed/", 200, patient=ANY, doctor=ANY),
    _op("POST", "/api/calendar/feed/rotate/", 200, patient=ANY, doctor=ANY),
    _op("GET", "/api/calendar/feed.ics", 200, public=True),
    _op("POST", "/api/appointments/{appointment_id}/reschedule/", 200, patient=OWN, admin=ANY),
    _op("GET", "/api/appointments/{appointment_id}/history/", 200, patient=OWN, doctor=OWN, admin=ANY),
    # notification
    _op("POST", "/api/webhooks/", 201, admin=ANY),
    _op("GET", "/api/webhooks/", 200, admin=ANY),
    _op("GET", "/api/webhooks/{webhook_id}/", 200, admin=ANY),
    _op("PATCH", "/api/webhooks/{webhook_id}/", 200, admin=ANY),
    _op("DELETE", "/api/webhooks/{webhook_id}/", 204, admin=ANY),
    _op("GET", "/api/webhooks/{webhook_id}/deliveries/", 200, admin=ANY),
    _op("POST", "/api/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver/", 202, admin=ANY),
)

BY_KEY = {operation.key: operation for operation in OPERATIONS}

# The callers of the matrix: (name, role or None for anonymous, owner of the resource?).
Caller = tuple[str, Role | None, bool]
CALLERS: tuple[Caller, ...] = (
    ("anonymous", None, False),
    ("patient (owner)", "patient", True),
    ("another patient", "patient", False),
    ("doctor (owner)", "doctor", True),
    ("another doctor", "doctor", False),
    ("admin", "admin", False),
    ("deactivated patient", "patient", True),
)


def expected_status(operation: Operation, caller: Caller) -> int:
    """The status spec/API.md gives ``caller`` on ``operation`` (with a valid request)."""
    name, role, owner = caller
    if operation.public:
        return operation.success
    if role is None or name.startswith("deactivated"):
        return 401
    rule = operation.allowed.get(role)
    if rule is None:
        return 403
    if rule == OWN and not owner:
        return 404
    return operation.success
