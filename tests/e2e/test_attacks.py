"""The attack suite of docs/security.md: what a security reviewer tries, through the gateway and
directly against each service's own port, and the refusal each attempt gets.

Each test names the threat it proves refused (the threat model's table points here). A direct
request is judged like one through the gateway within a second: the services learn of ended
sessions, role changes and deactivations by events, so those checks poll for up to 5 seconds.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .api import PASSWORD, User, login, new_user, problem
from .stack import SERVICES, wait_until

# A protected endpoint of each service, read by any role (or by the roles named), and how to call it.
READS = {
    "identity": ("GET", "/api/auth/me/"),
    "doctor": ("GET", "/api/doctors/"),
    "scheduling": ("GET", "/api/timeslots/"),
    "booking": ("GET", "/api/appointments/me/"),
    "notification": ("GET", "/api/webhooks/"),
}
# What only an admin may do, per service.
ADMIN_ONLY = {
    "identity": ("GET", "/api/users/"),
    "doctor": ("GET", "/api/doctors/"),
    "booking": ("GET", "/api/appointments/"),
    "notification": ("GET", "/api/webhooks/"),
}


def direct(stack, service: str, token: str | None = None) -> httpx.Client:
    """A client of one service's own port, bypassing the gateway (as an attacker inside would)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=stack.service_url(service), headers=headers, timeout=10)


def status_direct(stack, service: str, token: str, method: str, path: str) -> int:
    with direct(stack, service, token) as client:
        return client.request(method, path).status_code


def refused_everywhere(stack, token: str, endpoints=READS, timeout: float = 5.0) -> None:
    """Every endpoint answers 401 problem+json: through the gateway at once, directly within ``timeout``."""
    for service, (method, path) in endpoints.items():
        with stack.client(token) as client:
            problem(client.request(method, path), 401)
        wait_until(
            lambda service=service, method=method, path=path: (
                status_direct(stack, service, token, method, path) == 401
            ),
            timeout=timeout,
            what=f"{service} to refuse the token directly",
        )
        with direct(stack, service, token) as client:
            problem(client.request(method, path), 401)


def admin_token(stack) -> str:
    with stack.client() as client:
        return login(client, stack.admin.email, stack.admin.password)["access"]


def set_role(stack, user: User, role: str) -> None:
    with stack.client(admin_token(stack)) as client:
        assert client.patch(f"/api/users/{user.id}/", json={"role": role}).status_code == 200


def test_a_demoted_admin_loses_admin_powers_at_once_everywhere(stack):
    """Threat: a role change leaves the old role's powers with the user's tokens."""
    user = new_user(stack, "patient")
    set_role(stack, user, "admin")
    with stack.client() as client:
        token = login(client, user.email, PASSWORD)["access"]
    for service, (method, path) in ADMIN_ONLY.items():
        assert status_direct(stack, service, token, method, path) == 200

    set_role(stack, user, "patient")

    refused_everywhere(stack, token, ADMIN_ONLY)
    refused_everywhere(stack, token, {"scheduling": ("GET", "/api/doctors/1/timeslots/")})
    # A new login carries the new role, and no admin powers.
    with stack.client() as client:
        fresh = login(client, user.email, PASSWORD)["access"]
    with stack.client(fresh) as client:
        problem(client.get("/api/appointments/"), 403)


@pytest.mark.parametrize("end", ["logout", "refresh token reuse", "password change"])
def test_the_access_tokens_of_an_ended_session_are_refused_everywhere(stack, end):
    """Threat: an ended session (logout, a stolen refresh token detected, a password change)
    keeps working until its access token expires."""
    user = new_user(stack, "patient")
    with stack.client() as client:
        other = login(client, user.email, PASSWORD)  # a second session of the same user
    for service, (method, path) in READS.items():  # authenticated: 200, or 403 for another role's page
        assert status_direct(stack, service, user.access, method, path) != 401

    with stack.client(user.access) as client:
        if end == "logout":
            assert client.post("/api/auth/logout/", json={"refresh": user.refresh}).status_code == 204
            ended, alive = user.access, other["access"]
        elif end == "refresh token reuse":
            rotated = client.post("/api/auth/token/refresh/", json={"refresh": user.refresh})
            assert rotated.status_code == 200
            # The owner refreshes again (the rotated token is used, no grace period applies),
            # then the stolen first token is presented: reuse ends the session.
            latest = client.post("/api/auth/token/refresh/", json={"refresh": rotated.json()["refresh"]})
            assert latest.status_code == 200
            problem(client.post("/api/auth/token/refresh/", json={"refresh": user.refresh}), 401)
            refused_everywhere(stack, latest.json()["access"])
            ended, alive = user.access, other["access"]
        else:
            changed = client.patch(
                "/api/auth/me/", json={"password": "a fresh long passphrase", "current_password": PASSWORD}
            )
            assert changed.status_code == 200
            ended, alive = other["access"], user.access

    refused_everywhere(stack, ended)
    for service, (method, path) in READS.items():
        assert status_direct(stack, service, alive, method, path) != 401


def test_a_deactivated_users_token_is_refused_directly_by_every_service(stack):
    """Threat: a deactivated account keeps reaching services that are not behind the gateway."""
    user = new_user(stack, "patient")
    with stack.client(admin_token(stack)) as client:
        assert client.delete(f"/api/users/{user.id}/").status_code == 204
    refused_everywhere(stack, user.access)


def test_a_patient_cannot_hold_or_release_timeslots_directly_at_scheduling(stack):
    """Threat: any patient blocks any doctor's timeslots through scheduling's internal endpoint."""
    doctor = new_user(stack, "doctor")
    patient = new_user(stack, "patient")
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)
    with stack.client(doctor.access) as client:
        created = client.post(
            "/api/timeslots/",
            json={"start_time": start.isoformat(), "end_time": (start + timedelta(minutes=30)).isoformat()},
        )
    assert created.status_code == 201
    timeslot_id = created.json()["id"]
    body = {"reservation_id": str(uuid.uuid4()), "patient_id": patient.id}
    forged = _forged_service_token("booking", "scheduling")
    for token in (patient.access, doctor.access, forged, None):
        with direct(stack, "scheduling", token) as client:
            problem(client.post(f"/internal/timeslots/{timeslot_id}/hold", json=body), 401)
            problem(client.post(f"/internal/timeslots/{timeslot_id}/release", json=body), 401)
    # The timeslot is still free for everyone.
    with stack.client(patient.access) as client:
        free = client.get(f"/api/doctors/{doctor.id}/timeslots/").json()["results"]
    assert timeslot_id in [slot["id"] for slot in free]


def test_bookings_reservation_lookup_needs_schedulings_credential(stack):
    """Threat: anything that reaches booking's port reads reservation statuses."""
    patient = new_user(stack, "patient")
    path = f"/internal/reservations/{uuid.uuid4()}"
    for token in (None, patient.access, _forged_service_token("scheduling", "booking")):
        with direct(stack, "booking", token) as client:
            problem(client.get(path), 401)


def test_a_services_credential_is_refused_for_another_audience_and_as_a_users_token(stack):
    """Threat: a leaked service token (or client secret) opens every door."""
    secret = stack.service_secret("booking")
    with direct(stack, "identity") as client:
        response = client.post(
            "/internal/service-tokens",
            json={"grant_type": "client_credentials", "audience": "scheduling"},
            auth=("booking", secret),
        )
        assert response.status_code == 200
        token = response.json()["access_token"]
        problem(
            client.post(
                "/internal/service-tokens",
                json={"grant_type": "client_credentials", "audience": "scheduling"},
                auth=("booking", secret + "x"),
            ),
            401,
        )
    # Good for scheduling's internal endpoints only: not for booking's, and not as a user anywhere.
    with direct(stack, "booking", token) as client:
        problem(client.get(f"/internal/reservations/{uuid.uuid4()}"), 401)
    for service, (method, path) in READS.items():
        with direct(stack, service, token) as client:
            problem(client.request(method, path), 401)
    with stack.client(token) as client:
        problem(client.get("/api/appointments/me/"), 401)


def test_a_token_signed_by_anyone_but_identity_is_refused_everywhere(stack):
    """Threat: forged tokens (another key, ``alg: none``) pass a service that is reached directly."""
    now = int(time.time())
    claims = {
        "iss": "clinic-identity",
        "aud": "clinic",
        "sub": "1",
        "role": "admin",
        "typ": "access",
        "sid": str(uuid.uuid4()),
        "iat": now,
        "exp": now + 600,
    }
    other_key = jwt.encode(claims, Ed25519PrivateKey.generate(), algorithm="EdDSA", headers={"kid": "x"})
    unsigned = jwt.encode(claims, None, algorithm="none")
    for token in (other_key, unsigned):
        for service in SERVICES:
            method, path = READS[service]
            with direct(stack, service, token) as client:
                problem(client.request(method, path), 401)


def _forged_service_token(client: str, audience: str) -> str:
    now = int(time.time())
    claims = {"iss": "clinic-identity", "aud": audience, "sub": client, "typ": "service", "iat": now}
    claims["exp"] = now + 300
    return jwt.encode(claims, Ed25519PrivateKey.generate(), algorithm="EdDSA", headers={"kid": "forged"})
