"""CORS at the gateway (CORS_ALLOWED_ORIGINS): a browser front end on another origin calls the
API with a bearer token. The real Traefik in front of stand-in servers: preflights are answered
by the gateway itself, every answer to an allowed origin carries Access-Control-Allow-Origin
(errors included), and other origins get no CORS headers at all; and on the real stack, a
booking retried with its Idempotency-Key from the front end's origin."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from .echo import EchoServer, backends_of, echo_servers
from .stack import FRONT_END_ORIGIN, Gateway
from .test_appointments import new_timeslot

FRONT_END = "https://app.clinic.example"
FRONT_DESK = "https://desk.clinic.example:8443"
STRANGER = "https://evil.example"
TOKEN = "cors-patient-token"


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, EchoServer]]:
    with echo_servers({TOKEN: ("42", "patient")}) as servers:
        yield servers


@pytest.fixture(scope="module")
def gateway(servers, tmp_path_factory) -> Iterator[Gateway]:
    gateway = Gateway(
        workdir=tmp_path_factory.mktemp("cors-gateway"),
        backends=backends_of(servers),
        # As an operator writes it: spaces, and a trailing slash the browser never sends.
        env={"DOCS_URLS": servers["docs"].url, "CORS_ALLOWED_ORIGINS": f" {FRONT_END}/ , {FRONT_DESK}"},
    )
    with gateway.up():
        yield gateway


def preflight(gateway: Gateway, path: str, origin: str, method: str = "POST"):
    with gateway.client() as client:
        return client.options(
            path,
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": method,
                "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
            },
        )


def listed(value: str | None) -> set[str]:
    return {item.strip().lower() for item in (value or "").split(",") if item.strip()}


@pytest.mark.parametrize("origin", [FRONT_END, FRONT_DESK])
def test_a_preflight_from_an_allowed_origin_is_answered_by_the_gateway_alone(gateway, servers, origin):
    marker = uuid.uuid4().hex
    response = preflight(gateway, f"/api/appointments/?probe={marker}", origin)

    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == origin
    assert {"get", "post", "patch", "delete"} <= listed(response.headers["access-control-allow-methods"])
    assert {"authorization", "content-type", "idempotency-key"} <= listed(
        response.headers["access-control-allow-headers"]
    )
    assert response.headers["access-control-max-age"] == "600"
    # No credentials mode: the token travels in Authorization, never in a cookie.
    assert "access-control-allow-credentials" not in response.headers
    # Neither the token check nor the service saw it (a preflight carries no token).
    assert all(not server.seen(marker) for server in servers.values())


def test_an_allowed_origin_reads_answers_and_the_headers_a_client_needs(gateway):
    with gateway.client(TOKEN, headers={"Origin": FRONT_END}) as client:
        response = client.get("/api/appointments/me/")

    assert response.status_code == 200
    assert response.json()["service"] == "booking"
    assert response.headers["access-control-allow-origin"] == FRONT_END
    assert "origin" in listed(response.headers.get("vary"))
    assert {"retry-after", "idempotent-replayed", "x-request-id", "location"} <= listed(
        response.headers["access-control-expose-headers"]
    )


@pytest.mark.parametrize(
    "path", ["/api/appointments/me/", "/api/no-such-endpoint/", "/fhir/Appointment", "/api/auth/login/"]
)
def test_errors_reach_an_allowed_origin_readable(gateway, path):
    # A 401 of the token check, the gateway's own 404 problem, a login's 401 from identity: a
    # front end must be able to read each to tell its user what happened.
    with gateway.client(headers={"Origin": FRONT_END}) as client:
        if path == "/api/auth/login/":
            response = client.post(
                path, json={"email": "a@b.example", "password": "x"}, params={"echo_status": 401}
            )
        else:
            response = client.get(path)

    assert response.status_code in (401, 404)
    assert response.headers["access-control-allow-origin"] == FRONT_END


def test_another_origin_gets_no_cors_headers(gateway, servers):
    refused = preflight(gateway, "/api/appointments/", STRANGER)
    assert "access-control-allow-origin" not in refused.headers

    with gateway.client(TOKEN, headers={"Origin": STRANGER}) as client:
        response = client.get("/api/appointments/me/")
    # Served (a server cannot stop a non-browser client), but unreadable to that origin's pages.
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers


def test_the_public_documents_are_readable_from_an_allowed_origin(gateway):
    with gateway.client(headers={"Origin": FRONT_END}) as client:
        for path in ("/fhir/metadata", "/api/schema/identity/openapi.json", "/api/schema/openapi.json"):
            response = client.get(path)
            assert response.status_code == 200, path
            assert response.headers["access-control-allow-origin"] == FRONT_END, path


def test_a_front_end_on_its_origin_books_retries_and_reads_the_replay_on_the_real_stack(
    stack, patient, doctor
):
    # The main stack allows FRONT_END_ORIGIN (conftest): the browser's preflight, then the
    # booking and its retry with the same Idempotency-Key, each readable with its headers.
    slot = new_timeslot(stack, doctor)
    origin = {"Origin": FRONT_END_ORIGIN}
    with stack.client(headers=origin) as client:
        allowed = client.options(
            "/api/appointments/",
            headers={
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
            },
        )
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == FRONT_END_ORIGIN

    key = {**origin, "Idempotency-Key": str(uuid.uuid4())}
    with stack.client(patient.access) as client:
        first = client.post("/api/appointments/", json={"timeslot_id": slot["id"]}, headers=key)
        again = client.post("/api/appointments/", json={"timeslot_id": slot["id"]}, headers=key)
    assert first.status_code == again.status_code == 201
    for response in (first, again):
        assert response.headers["access-control-allow-origin"] == FRONT_END_ORIGIN
        assert "idempotent-replayed" in listed(response.headers["access-control-expose-headers"])
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
