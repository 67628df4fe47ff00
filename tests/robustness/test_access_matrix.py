"""The authorization matrix: every operation × every kind of caller, exactly as spec/API.md says.

Generated from the one declaration of the access rules (``access.py``): anonymous callers
get 401, a role the endpoint is not for gets 403, a caller who may use the endpoint but
not see this resource gets 404 (existence never leaks), the rest get the documented 2xx.
Each cell sends a valid request about fresh resources owned by "the" patient and doctor.
"""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

import pytest

from ..e2e.api import PROBLEM_JSON
from ..e2e.stack import Stack
from .access import CALLERS, OPERATIONS, Caller, Operation, expected_status
from .people import PASSWORD, People, next_start, next_waitlist_day, unique_email

_bulk_days = itertools.count(400)


def request_for(operation: Operation, people: People) -> tuple[str, dict[str, Any] | None]:
    """A valid request (path, JSON body) for ``operation`` about fresh resources of the owners."""
    match operation.key:
        case ("POST", "/api/auth/register/"):
            return operation.path, {"email": unique_email(), "password": PASSWORD, "full_name": "Reg Ister"}
        case ("POST", "/api/auth/login/"):
            return operation.path, {"email": people.other_patient.email, "password": PASSWORD}
        case ("POST", "/api/auth/token/refresh/"):
            return operation.path, {"refresh": people.fresh_login(people.other_patient)["refresh"]}
        case ("PATCH", "/api/auth/me/"):
            return operation.path, {"phone": "+1 555 0100"}
        case ("POST", "/api/auth/logout/"):
            # Someone else's (or an unknown) refresh token is ignored: 204 and nothing revoked.
            return operation.path, {"refresh": "not-a-refresh-token-of-the-caller"}
        case ("GET", "/api/users/{user_id}/"):
            return f"/api/users/{people.other_patient.id}/", None
        case ("PATCH", "/api/users/{user_id}/"):
            return f"/api/users/{people.victim().id}/", {"full_name": "Renamed Victim"}
        case ("DELETE", "/api/users/{user_id}/"):
            return f"/api/users/{people.victim().id}/", None
        case ("GET", "/api/doctors/{doctor_id}/") | ("GET", "/api/doctors/{doctor_id}/timeslots/"):
            return operation.path.replace("{doctor_id}", str(people.doctor.id)), None
        case ("PATCH", "/api/doctors/{doctor_id}/"):
            return f"/api/doctors/{people.doctor.id}/", {"bio": "Edited by an admin."}
        case ("PATCH", "/api/doctors/me/"):
            return operation.path, {"bio": "Edited by the doctor."}
        case ("GET", "/api/doctors/{doctor_id}/booking-policy/"):
            return f"/api/doctors/{people.doctor.id}/booking-policy/", None
        case ("PATCH", "/api/doctors/{doctor_id}/booking-policy/"):
            # The defaults again: the other cells' bookings stay within the policy.
            return f"/api/doctors/{people.doctor.id}/booking-policy/", {"min_notice_minutes": 0}
        case ("PATCH", "/api/doctors/me/booking-policy/"):
            return operation.path, {"booking_horizon_days": None}
        case ("POST", "/api/timeslots/"):
            start = next_start()
            end = start + timedelta(minutes=30)
            return operation.path, {"start_time": start.isoformat(), "end_time": end.isoformat()}
        case ("POST", "/api/timeslots/bulk/"):
            day = next_start(days_ahead=next(_bulk_days)).date().isoformat()
            return operation.path, {
                "date_from": day,
                "date_to": day,
                "weekdays": list(range(7)),
                "day_start": "09:00",
                "day_end": "09:30",
                "slot_minutes": 30,
            }
        case ("GET", "/api/timeslots/{timeslot_id}/") | ("DELETE", "/api/timeslots/{timeslot_id}/"):
            return f"/api/timeslots/{people.timeslot()['id']}/", None
        case ("POST", "/api/appointments/"):
            return operation.path, {"timeslot_id": people.timeslot()["id"]}
        case ("GET", "/api/appointments/{appointment_id}/") | (
            "DELETE",
            "/api/appointments/{appointment_id}/",
        ):
            return f"/api/appointments/{people.appointment()['id']}/", None
        case ("PATCH", "/api/appointments/{appointment_id}/status/"):
            return f"/api/appointments/{people.appointment()['id']}/status/", {"status": "confirmed"}
        case ("POST", "/api/waitlist/"):
            day = next_waitlist_day()
            return operation.path, {"doctor_id": people.doctor.id, "date_from": day, "date_to": day}
        case ("DELETE", "/api/waitlist/{entry_id}/"):
            return f"/api/waitlist/{people.waitlist_entry()['id']}/", None
        case ("GET", "/api/calendar/feed.ics"):
            return f"{operation.path}?{people.feed_query()}", None
        case ("POST", "/api/appointments/{appointment_id}/reschedule/"):
            moved = people.appointment()["id"]
            return f"/api/appointments/{moved}/reschedule/", {"timeslot_id": people.timeslot()["id"]}
        case ("GET", "/api/appointments/{appointment_id}/history/"):
            return f"/api/appointments/{people.appointment()['id']}/history/", None
        case ("POST", "/api/webhooks/"):
            return operation.path, {"url": "http://127.0.0.1:9/hook", "event_types": ["appointment.booked"]}
        case (
            ("GET", "/api/webhooks/{webhook_id}/")
            | ("DELETE", "/api/webhooks/{webhook_id}/")
            | (
                "GET",
                "/api/webhooks/{webhook_id}/deliveries/",
            )
        ):
            return operation.path.replace("{webhook_id}", str(people.webhook()["id"])), None
        case ("PATCH", "/api/webhooks/{webhook_id}/"):
            return f"/api/webhooks/{people.webhook()['id']}/", {"description": "Edited"}
        case ("POST", "/api/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver/"):
            webhook_id, delivery_id = people.delivery()
            return f"/api/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver/", None
    assert "{" not in operation.path, f"request_for() has no case for {operation.label}"
    return operation.path, None


def who(caller: Caller) -> str:
    return {
        "anonymous": "anonymous",
        "patient (owner)": "patient",
        "another patient": "other_patient",
        "doctor (owner)": "doctor",
        "another doctor": "other_doctor",
        "admin": "admin",
        "deactivated patient": "deactivated",
    }[caller[0]]


@pytest.mark.parametrize("caller", CALLERS, ids=[c[0] for c in CALLERS])
@pytest.mark.parametrize("operation", OPERATIONS, ids=[o.label for o in OPERATIONS])
def test_each_caller_gets_exactly_the_status_the_contract_gives(
    stack: Stack, people: People, operation: Operation, caller: Caller
):
    path, body = request_for(operation, people)
    expected = expected_status(operation, caller)

    with stack.client(people.token(who(caller))) as client:
        response = client.request(operation.method, path, json=body)

    assert response.status_code == expected, (
        f"{caller[0]}: {operation.method} {path} → {response.status_code}, "
        f"the contract says {expected}: {response.text[:300]}"
    )
    if expected >= 400:
        assert response.headers["content-type"].startswith(PROBLEM_JSON), response.headers
        problem = response.json()
        assert problem["status"] == expected
        assert problem["title"] and problem["detail"]


def documented_operations(stack: Stack) -> set[tuple[str, str]]:
    """Every (method, path) of every service's OpenAPI document, read through the gateway."""
    found = set()
    with stack.client() as client:
        for service in ("identity", "doctor", "scheduling", "booking", "notification"):
            response = client.get(f"/api/schema/{service}/openapi.json")
            assert response.status_code == 200, response.text
            for path, item in response.json()["paths"].items():
                found.update(
                    (method.upper(), path)
                    for method in item
                    if method in {"get", "put", "post", "patch", "delete", "head", "options"}
                )
    return found


def test_every_documented_operation_has_exactly_one_access_rule(stack: Stack):
    declared = {operation.key for operation in OPERATIONS}
    assert len(declared) == len(OPERATIONS), "an operation is declared twice"
    documented = documented_operations(stack)
    assert documented - declared == set(), "operations without an access rule in tests/robustness/access.py"
    assert declared - documented == set(), "access rules of operations no service documents"
