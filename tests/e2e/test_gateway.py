"""The gateway in front of the real services, seen only as a client sees it."""

from __future__ import annotations

import uuid

import httpx
import pytest

from .api import PASSWORD, problem, unique_email
from .stack import SERVICES

# (path, router, service) for a request without a token: every public path family of spec/API.md.
PROTECTED_ROUTES = [
    ("/api/auth/me/", "auth", "identity"),
    ("/api/auth/logout/", "auth", "identity"),
    ("/api/users/", "users", "identity"),
    ("/api/users/1/", "users", "identity"),
    ("/api/doctors/", "doctors", "doctor"),
    ("/api/doctors/1/", "doctors", "doctor"),
    ("/api/doctors/me/", "doctors", "doctor"),
    ("/api/doctors/1/timeslots/", "doctor-timeslots", "scheduling"),
    ("/api/timeslots/", "timeslots", "scheduling"),
    ("/api/timeslots/bulk/", "timeslots", "scheduling"),
    ("/api/timeslots/1/", "timeslots", "scheduling"),
    ("/api/appointments/", "appointments", "booking"),
    ("/api/appointments/me/", "appointments", "booking"),
    ("/api/appointments/1/", "appointments", "booking"),
    ("/api/appointments/1/status/", "appointments", "booking"),
]
SPOOFED = {"X-User-Id": "1", "X-User-Role": "admin", "X_User_Role": "admin", "X_User_Id": "1"}


def test_the_gateway_answers_its_ping(stack):
    response = httpx.get(f"{stack.admin_url}/ping")
    assert response.status_code == 200
    assert response.text == "OK"


@pytest.mark.parametrize("service", SERVICES)
def test_each_services_openapi_document_is_public_through_the_gateway(stack, service):
    request_id = uuid.uuid4().hex
    with stack.client() as client:
        response = client.get(f"/api/schema/{service}/openapi.json", headers={"X-Request-Id": request_id})
    assert response.status_code == 200
    assert response.json()["info"]["title"] == f"Clinic {service} API"
    assert stack.access_log(request_id)["ServiceName"] == f"{service}@file"


@pytest.mark.parametrize(("path", "router", "service"), PROTECTED_ROUTES)
def test_each_protected_path_takes_its_services_route(stack, path, router, service):
    request_id = uuid.uuid4().hex
    with stack.client() as client:
        client.get(path, headers={"X-Request-Id": request_id})
    entry = stack.access_log(request_id)
    assert entry["RouterName"] == f"{router}@file"


@pytest.mark.parametrize(("path", "service"), [(p, s) for p, _, s in PROTECTED_ROUTES])
def test_a_protected_path_reached_with_a_token_is_served_by_its_service(stack, patient, path, service):
    request_id = uuid.uuid4().hex
    with stack.client(patient.access) as client:
        response = client.get(path, headers={"X-Request-Id": request_id})
    assert response.status_code != 401, response.text
    assert stack.access_log(request_id).get("ServiceName") == f"{service}@file"


@pytest.mark.parametrize("path", [p for p, _, _ in PROTECTED_ROUTES])
def test_a_protected_path_without_a_token_gets_a_401_problem(stack, path):
    with stack.client() as client:
        response = client.get(path)
    body = problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "traceback" not in response.text.lower()
    assert body["type"]


@pytest.mark.parametrize("path", ["/internal/verify", "/internal/jwks", "/health/ready", "/health/live"])
def test_internal_and_health_endpoints_are_not_reachable_through_the_gateway(stack, patient, path):
    for token in (None, patient.access):
        with stack.client(token) as client:
            response = client.get(path)
        assert response.status_code == 404
        # Every service response carries X-Request-Id; this 404 is the gateway's own.
        assert "x-request-id" not in response.headers


def test_spoofed_identity_headers_without_a_token_still_get_401(stack):
    with stack.client(headers=SPOOFED) as client:
        for path in ("/api/users/", "/api/auth/me/", "/api/appointments/"):
            problem(client.get(path), 401)


def test_a_request_with_two_authorization_headers_is_refused_at_the_gateway(stack, patient, doctor):
    # One of each: a component reading the first and one reading the last would disagree.
    two = [("Authorization", f"Bearer {patient.access}"), ("Authorization", f"Bearer {doctor.access}")]
    with stack.client() as client:
        for path in ("/api/auth/me/", "/api/appointments/me/", "/api/timeslots/"):
            response = client.get(path, headers=two)
            problem(response, 401)
            assert response.headers["www-authenticate"] == 'Bearer error="invalid_request"'


def test_a_patient_claiming_to_be_an_admin_in_headers_is_still_forbidden(stack, patient):
    with stack.client(patient.access, headers=SPOOFED) as client:
        problem(client.get("/api/users/"), 403)
        problem(client.get("/api/appointments/"), 403)
        me = client.get("/api/auth/me/")
    assert me.status_code == 200
    assert me.json()["id"] == patient.id
    assert me.json()["role"] == "patient"


def test_public_routes_ignore_spoofed_identity_headers(stack):
    with stack.client(headers=SPOOFED) as client:
        response = client.post(
            "/api/auth/register/",
            json={"email": unique_email(), "password": PASSWORD, "full_name": "Sly Spoofer"},
        )
    assert response.status_code == 201, response.text
    assert response.json()["role"] == "patient"


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
def test_an_unknown_api_path_is_a_404_problem(stack, patient, method):
    with stack.client(patient.access) as client:
        response = client.request(method, "/api/apointments/", json={"timeslot_id": 1})
    assert problem(response, 404)["code"] == "not_found"


def test_refresh_is_rate_limited_per_client_address_with_a_problem(stack):
    burst = int(stack.env["AUTH_RATE_LIMIT_BURST"])
    statuses = []
    with stack.client() as client:
        while 429 not in statuses and len(statuses) < burst * 3:
            response = client.post("/api/auth/token/refresh/", json={"refresh": "not-a-refresh-token"})
            statuses.append(response.status_code)
    assert 429 not in statuses[:burst]
    assert statuses[-1] == 429
    # Traefik's own 429, as problem+json like every other error (the docs app's problem page).
    assert problem(response, 429)["code"] == "rate_limited"
    # The refill time of one request: AUTH_RATE_LIMIT_PERIOD / AUTH_RATE_LIMIT_AVERAGE (1m / 10).
    assert int(response.headers["retry-after"]) == 6
    with stack.client() as another_address:
        problem(another_address.post("/api/auth/token/refresh/", json={"refresh": "not-one"}), 401)


def test_login_is_rate_limited_per_client_address(stack):
    burst = int(stack.env["AUTH_RATE_LIMIT_BURST"])
    statuses = []
    with stack.client() as client:
        while 429 not in statuses and len(statuses) < burst * 3:
            # A new account each time: identity's per-account throttling stays out of the way.
            credentials = {"email": unique_email("nobody"), "password": "Wrong-Password-1"}
            response = client.post("/api/auth/login/", json=credentials)
            statuses.append(response.status_code)
    assert 429 not in statuses[:burst]
    assert statuses[-1] == 429
    # Traefik's own 429 (identity answers its own 429s on login, which must pass unchanged:
    # gateway/dynamic/routes.yml), with when to come back.
    assert int(response.headers["retry-after"]) >= 1
    assert "login_throttled" not in response.text
    with stack.client() as another_address:
        problem(another_address.post("/api/auth/login/", json=credentials), 401)


@pytest.mark.parametrize("path", ["/api/auth/me", "/api/users", "/api/doctors", "/api/appointments/me"])
def test_the_trailing_slash_is_optional(stack, admin, path):
    with stack.client() as client:
        tokens = client.post(
            "/api/auth/login/", json={"email": admin.email, "password": admin.password}
        ).json()
    with stack.client(tokens["access"]) as client:
        without_slash = client.get(path)
        with_slash = client.get(path + "/")
    assert without_slash.status_code == with_slash.status_code
    assert without_slash.json() == with_slash.json()
    with stack.client() as anonymous:
        assert anonymous.get(path).json() == anonymous.get(path + "/").json()


@pytest.mark.parametrize("path", ["/api/doctors/", "/api/appointments/me/", "/api/auth/me/"])
def test_head_answers_like_get_without_a_body(stack, patient, path):
    with stack.client(patient.access) as client:
        got, head = client.get(path), client.head(path)
    assert got.status_code == head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == str(len(got.content))
    assert head.headers["content-type"] == got.headers["content-type"] == "application/json"
    with stack.client() as anonymous:
        refused = anonymous.head(path)
    assert refused.status_code == 401
    assert refused.content == b""
