"""The gateway's routing file on its own: the real Traefik, started from the Procfile's
``gateway`` entry, in front of stand-in servers that report exactly what reached them.

This pins down what the whole-stack tests can only see indirectly: which service each path
reaches, that paths are not rewritten, which headers a service receives, what ForwardAuth
is sent, and that rate limits and health checks follow the environment.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import suppress
from urllib.parse import urlsplit

import httpx
import pytest

from .echo import EchoServer, backends_of, echo_servers
from .stack import SERVICES, Gateway, wait_until

PATIENT_TOKEN = "patient-token"
USERS = {PATIENT_TOKEN: ("42", "patient")}
RATE_LIMIT = 3

# (path, service, public): every public path family of spec/API.md, with and without the slash.
ROUTES = [
    ("/api/auth/register/", "identity", True),
    ("/api/auth/register", "identity", True),
    ("/api/auth/login/", "identity", True),
    ("/api/auth/token/refresh/", "identity", True),
    ("/api/auth/token/refresh", "identity", True),
    ("/api/auth/me/", "identity", False),
    ("/api/auth/me", "identity", False),
    ("/api/auth/logout/", "identity", False),
    ("/api/users/", "identity", False),
    ("/api/users", "identity", False),
    ("/api/users/7/", "identity", False),
    ("/api/doctors/", "doctor", False),
    ("/api/doctors", "doctor", False),
    ("/api/doctors/7/", "doctor", False),
    ("/api/doctors/me/", "doctor", False),
    ("/api/doctors/7/timeslots/", "scheduling", False),
    ("/api/doctors/7/timeslots", "scheduling", False),
    ("/api/doctors/me/timeslots/", "scheduling", False),
    ("/api/timeslots/", "scheduling", False),
    ("/api/timeslots/bulk/", "scheduling", False),
    ("/api/timeslots/3/", "scheduling", False),
    ("/api/appointments/", "booking", False),
    ("/api/appointments/me/", "booking", False),
    ("/api/appointments/5/", "booking", False),
    ("/api/appointments/5/status/", "booking", False),
    *[(f"/api/schema/{service}/openapi.json", service, True) for service in SERVICES],
    # the docs app (gateway/dynamic/docs.yml): the merged document, the pages and their files
    ("/api/schema/openapi.json", "docs", True),
    ("/api/schema/swagger-ui/", "docs", True),
    ("/api/schema/swagger-ui", "docs", True),
    ("/api/schema/redoc/", "docs", True),
    ("/api/schema/redoc", "docs", True),
    ("/api/schema/assets/swagger-ui-bundle.js", "docs", True),
    # FHIR: each resource type to the service that owns it; the CapabilityStatement is the docs app's
    ("/fhir/metadata", "docs", True),
    ("/fhir/Practitioner", "doctor", False),
    ("/fhir/Practitioner/7", "doctor", False),
    ("/fhir/Schedule/7", "scheduling", False),
    ("/fhir/Slot", "scheduling", False),
    ("/fhir/Slot/3", "scheduling", False),
    ("/fhir/Appointment", "booking", False),
    ("/fhir/Appointment/5", "booking", False),
]
PUBLIC = [(path, service) for path, service, public in ROUTES if public]
PROTECTED = [(path, service) for path, service, public in ROUTES if not public]
NOT_ROUTED = [
    "/internal/verify",
    "/internal/jwks",
    "/internal/timeslots/1/hold",
    "/health/ready",
    "/health/live",
    "/",
    "/api/",
    "/api/authx/",
    "/api/schema/identity/",
    "/api/schema/",
    "/api/schema/swagger-ui/index.html",
    "/api/schema/assets/",
    "/api/schema/assets/vendor/swagger-ui-bundle.js",
    "/problems/429",
    "/fhir",
    "/fhir/Patient/1",
    "/fhir/Slots",
    "/fhir/problems/404",
]
SPOOFED = {"X-User-Id": "1", "X-User-Role": "admin", "X_User_Role": "admin", "X.User.Id": "1"}


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, EchoServer]]:
    with echo_servers(USERS) as servers:
        servers["doctor-2"] = EchoServer("doctor", name="doctor-2").start()
        yield servers


@pytest.fixture(scope="module")
def gateway(servers, tmp_path_factory) -> Iterator[Gateway]:
    routes = backends_of(servers)
    routes["doctor"].append(servers["doctor-2"].url)
    gateway = Gateway(
        workdir=tmp_path_factory.mktemp("gateway"),
        backends=routes,
        env={
            "DOCS_URLS": servers["docs"].url,
            "AUTH_RATE_LIMIT_AVERAGE": str(RATE_LIMIT),
            "AUTH_RATE_LIMIT_PERIOD": "1h",
            "AUTH_RATE_LIMIT_BURST": str(RATE_LIMIT),
        },
    )
    with gateway.up():
        yield gateway


def marked(path: str) -> tuple[str, str]:
    """``path`` with a unique query marker, and the marker, to find the request at the servers."""
    marker = uuid.uuid4().hex
    return f"{path}{'&' if '?' in path else '?'}probe={marker}", marker


def seen_anywhere(servers: dict[str, EchoServer], marker: str) -> list[str]:
    return [name for name, server in servers.items() if server.seen(marker)]


@pytest.mark.parametrize(("path", "service"), PUBLIC + PROTECTED)
def test_each_path_reaches_its_service_unrewritten(gateway, path, service):
    url, _ = marked(path)
    with gateway.client(PATIENT_TOKEN) as client:
        response = client.get(url)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["service"] == service
    assert body["path"] == url


@pytest.mark.parametrize(("path", "service"), PROTECTED)
def test_a_protected_path_without_a_valid_token_gets_identitys_401_and_reaches_no_service(
    gateway, servers, path, service
):
    for token in (None, "forged"):
        url, marker = marked(path)
        with gateway.client(token) as client:
            response = client.get(url)
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert response.json()["status"] == 401
        assert seen_anywhere(servers, marker) == ["identity"]  # only its verify endpoint
        assert [r.path for r in servers["identity"].seen(marker)] == ["/internal/verify"]


@pytest.mark.parametrize(("path", "service"), PUBLIC)
def test_a_public_path_skips_forward_auth(gateway, servers, path, service):
    url, marker = marked(path)
    with gateway.client() as client:
        response = client.post(url, json={})
    assert response.status_code == 200
    assert response.json()["service"] == service
    assert not any(r.path.startswith("/internal/") for r in servers["identity"].seen(marker))


def test_forward_auth_is_sent_the_credentials_and_the_original_request_only(gateway, servers):
    url, marker = marked("/api/appointments/")
    with gateway.client(PATIENT_TOKEN, cookies={"session": "secret"}) as client:
        response = client.post(url, json={"timeslot_id": 1}, headers={"X-Request-Id": marker})
    assert response.status_code == 200
    (verify,) = [r for r in servers["identity"].seen(marker) if r.path.startswith("/internal/verify")]
    assert verify.method == "GET"
    assert verify.body == b""
    assert verify.header("Authorization") == [f"Bearer {PATIENT_TOKEN}"]
    assert verify.header("X-Request-Id") == [marker]
    assert verify.header("X-Forwarded-Method") == ["POST"]
    assert verify.header("X-Forwarded-Uri") == [url]
    for withheld in ("Cookie", "Content-Type", "Content-Length"):
        assert verify.header(withheld) == []


@pytest.mark.parametrize(
    ("path", "token"),
    [("/api/auth/login/", None), ("/api/schema/booking/openapi.json", None), ("/api/users/", PATIENT_TOKEN)],
)
def test_identity_headers_sent_by_a_client_never_reach_a_service(gateway, path, token):
    with gateway.client(token, headers=SPOOFED) as client:
        response = client.get(path)
    assert response.status_code == 200
    received = {name.lower(): value for name, value in response.json()["headers"]}
    for spoofed in ("x_user_role", "x.user.id"):
        assert spoofed not in received
    if token is None:
        assert "x-user-id" not in received
        assert "x-user-role" not in received
    else:
        headers = response.json()["headers"]
        assert [v for k, v in headers if k.lower() == "x-user-id"] == ["42"]
        assert [v for k, v in headers if k.lower() == "x-user-role"] == ["patient"]


@pytest.mark.parametrize("path", NOT_ROUTED)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_internal_health_and_unknown_paths_are_not_routed(gateway, servers, path, method):
    url, marker = marked(path)
    with gateway.client(PATIENT_TOKEN) as client:
        response = client.request(method, url, json={})
    assert response.status_code == 404
    # No service sees it; an unknown path under /api/ gets the docs app's 404 problem page,
    # asked for as /problems/404 (only the query string, with the marker, comes along), and one
    # under /fhir the docs app's 404 OperationOutcome, /fhir/problems/404.
    assert [name for name in seen_anywhere(servers, marker) if name != "docs"] == []
    asked = [(r.method, urlsplit(r.path).path) for r in servers["docs"].seen(marker)]
    page = "/fhir/problems/404" if path.startswith("/fhir") else "/problems/404"
    assert asked == ([(method, page)] if path.startswith(("/api/", "/fhir")) else [])


@pytest.mark.parametrize(
    "raw_path",
    [
        "/api/users/../../internal/jwks",
        "/api/users/%2e%2e/%2e%2e/internal/jwks",
        "/api/users/..%2f..%2finternal/jwks",
        "/api/users/%2e%2e%2f%2e%2e%2finternal%2fjwks",
        "/api/schema/identity/openapi.json/../../../internal/jwks",
        "/api/users%5c..%5c..%5cinternal/jwks",
    ],
)
def test_dot_segments_and_encoded_separators_never_reach_an_internal_path(gateway, servers, raw_path):
    connection = http.client.HTTPConnection("127.0.0.1", gateway.gateway_port, timeout=10)
    try:
        connection.request("GET", raw_path, headers={"Authorization": f"Bearer {PATIENT_TOKEN}"})
        status = connection.getresponse().status
    finally:
        connection.close()
    assert status in (400, 404)
    for server in servers.values():
        assert not [r for r in server.requests if "jwks" in r.path]


@pytest.mark.parametrize("path", ["/api/auth/login/", "/api/auth/register/", "/api/auth/token/refresh/"])
def test_login_register_and_refresh_are_rate_limited_per_client_address(gateway, path):
    with gateway.client() as client:
        statuses = [client.post(path, json={}).status_code for _ in range(RATE_LIMIT)]
        limited = client.post(path, json={})
    assert statuses == [200] * RATE_LIMIT
    assert limited.status_code == 429
    if path == "/api/auth/login/":
        # Traefik's own answer: on login, identity's 429s must pass unreplaced (below).
        assert "docs" not in limited.text
        assert int(limited.headers["retry-after"]) >= 1
    else:
        # The docs app's problem page (here the stand-in's echo), asked with the limit.
        assert limited.json()["server"] == "docs"
        assert limited.json()["path"] == f"/problems/429?average={RATE_LIMIT}&period=1h"
    with gateway.client() as other_address:
        assert other_address.post(path, json={}).status_code == 200


@pytest.mark.parametrize(("method", "path"), [("POST", "/api/auth/login/"), ("PATCH", "/api/auth/me/")])
def test_identitys_own_429_reaches_the_client_unreplaced(gateway, method, path):
    # Login throttling (429 login_throttled, with the account's Retry-After) is identity's answer.
    with gateway.client(PATIENT_TOKEN) as client:
        response = client.request(method, f"{path}?echo_status=429", json={})
    assert response.status_code == 429
    assert response.json()["server"] == "identity"


def test_the_access_log_keeps_no_query_string(gateway):
    request_id = uuid.uuid4().hex
    with gateway.client(PATIENT_TOKEN) as client:
        client.get(
            "/api/users/?search=ada.lovelace%40example.com&page=2", headers={"X-Request-Id": request_id}
        )
    entry = gateway.access_log(request_id)
    assert entry["RequestPath"] == "/api/users/"
    assert "ada.lovelace" not in json.dumps(entry)


@pytest.mark.parametrize(
    ("status", "answered_by"), [(502, "docs"), (504, "docs"), (500, "booking"), (503, "booking")]
)
def test_the_gateways_own_error_statuses_get_the_docs_apps_problem_page(gateway, status, answered_by):
    # 502 and 504 are what Traefik answers for a service it cannot reach or that does not answer:
    # whoever produced them, the client gets the problem page (here the docs stand-in's echo).
    # A service's own errors (500, 503: each with its own code) reach the client unchanged.
    with gateway.client(PATIENT_TOKEN) as client:
        response = client.get(f"/api/appointments/?echo_status={status}")
    assert response.status_code == status
    assert response.json()["server"] == answered_by
    if answered_by == "docs":
        assert response.json()["path"] == f"/problems/{status}"


@pytest.mark.parametrize("status", [502, 504])
def test_the_gateways_own_error_statuses_of_fhir_requests_get_the_docs_apps_fhir_page(gateway, status):
    # The docs app answers its pages under /fhir/problems/ as OperationOutcome resources.
    with gateway.client(PATIENT_TOKEN) as client:
        response = client.get(f"/fhir/Appointment?echo_status={status}")
    assert response.status_code == status
    assert (response.json()["server"], response.json()["path"]) == ("docs", f"/fhir/problems/{status}")


def header(response_json: dict, name: str) -> list[str]:
    return [value for key, value in response_json["headers"] if key.lower() == name.lower()]


def test_the_client_address_the_gateway_sees_is_the_test_clients_own(gateway):
    request_id = uuid.uuid4().hex
    with gateway.client(source_address="127.9.8.7") as client:
        client.get("/api/schema/doctor/openapi.json", headers={"X-Request-Id": request_id})
    assert gateway.access_log(request_id)["ClientHost"] == "127.9.8.7"


def forwarded_proto(gateway: Gateway, source: str) -> list[str]:
    """The X-Forwarded-Proto a service receives when a client at ``source`` sends ``https``
    (as a TLS-terminating proxy in front of a plain-HTTP gateway does)."""
    with gateway.client(PATIENT_TOKEN, source_address=source) as client:
        echoed = client.get("/api/doctors/", headers={"X-Forwarded-Proto": "https"}).json()
    return header(echoed, "X-Forwarded-Proto")


def test_a_clients_forwarded_proto_is_replaced_with_the_gateways_own(gateway):
    assert forwarded_proto(gateway, "127.9.8.7") == ["http"]


def test_a_trusted_proxys_forwarded_proto_is_kept_and_only_its(servers, tmp_path_factory):
    proxied = Gateway(
        workdir=tmp_path_factory.mktemp("behind-a-proxy"),
        backends=backends_of(servers),
        env={"DOCS_URLS": servers["docs"].url, "GATEWAY_TRUSTED_PROXY_IPS": "127.9.8.7/32,127.9.9.0/24"},
    )
    with proxied.up():
        assert forwarded_proto(proxied, "127.9.8.7") == ["https"]
        assert forwarded_proto(proxied, "127.9.9.20") == ["https"]
        assert forwarded_proto(proxied, "127.0.0.1") == ["http"]


def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_rate_limit(servers, tmp_path_factory):
    proxied = Gateway(
        workdir=tmp_path_factory.mktemp("rate-limits-behind-a-proxy"),
        backends=backends_of(servers),
        env={
            "DOCS_URLS": servers["docs"].url,
            "GATEWAY_TRUSTED_PROXY_IPS": "127.9.8.7/32, 127.9.9.0/24",
            "AUTH_RATE_LIMIT_AVERAGE": str(RATE_LIMIT),
            "AUTH_RATE_LIMIT_PERIOD": "1h",
            "AUTH_RATE_LIMIT_BURST": str(RATE_LIMIT),
        },
    )

    def statuses(source: str, client_address: str | None, count: int) -> list[int]:
        headers = {} if client_address is None else {"X-Forwarded-For": client_address}
        with proxied.client(source_address=source) as client:
            answers = [client.post("/api/auth/register/", json={}, headers=headers) for _ in range(count)]
        return [answer.status_code for answer in answers]

    with proxied.up():
        # Two clients behind the proxy: each its own limit, not one for the proxy's address.
        assert statuses("127.9.8.7", "203.0.113.1", RATE_LIMIT + 1) == [200] * RATE_LIMIT + [429]
        assert statuses("127.9.8.7", "203.0.113.2", 1) == [200]
        # What counts is the address the proxy appended, not what the client claimed before it.
        assert statuses("127.9.8.7", "203.0.113.2, 203.0.113.1", 1) == [429]
        # An IPv6 client counts by its /64, as without a proxy: other addresses of it do not escape.
        assert statuses("127.9.9.20", "2001:db8::1", RATE_LIMIT) == [200] * RATE_LIMIT
        assert statuses("127.9.9.20", "2001:db8::2", 1) == [429]
        assert statuses("127.9.9.20", "2001:db8:0:1::1", 1) == [200]
        # From any other address a forwarded client is not believed: no way into another's limit
        # (nor out of one's own).
        assert statuses("127.0.0.1", "203.0.113.3", RATE_LIMIT + 1) == [200] * RATE_LIMIT + [429]
        assert statuses("127.0.0.1", "203.0.113.4", 1) == [429]
        # Such clients have no forwarded address: they share one limit (docs/deploy.md says so).
        assert statuses("127.0.0.2", None, 1) == [429]


def test_other_routes_are_not_rate_limited(gateway):
    with gateway.client(PATIENT_TOKEN) as client:
        statuses = {client.get("/api/auth/me/").status_code for _ in range(RATE_LIMIT * 3)}
    assert statuses == {200}


def test_requests_are_spread_over_a_services_replicas(gateway):
    with gateway.client(PATIENT_TOKEN) as client:
        served_by = {client.get("/api/doctors/").json()["server"] for _ in range(6)}
    assert served_by == {"doctor", "doctor-2"}


def test_a_replica_failing_readiness_leaves_the_rotation_and_rejoins_when_ready(gateway, servers):
    sick = servers["doctor-2"]
    with gateway.client(PATIENT_TOKEN) as client:

        def servers_of_a_burst() -> set[str]:
            return {client.get("/api/doctors/").json()["server"] for _ in range(6)}

        sick.ready_status = 503
        try:
            wait_until(
                lambda: servers_of_a_burst() == {"doctor"}, timeout=20, what="doctor-2 out of rotation"
            )
        finally:
            sick.ready_status = 200
        wait_until(lambda: "doctor-2" in servers_of_a_burst(), timeout=20, what="doctor-2 back in rotation")


def test_a_service_with_no_healthy_replica_gets_the_docs_apps_503_problem_page(gateway, servers):
    # Traefik's own "no available server" is plain text; the service's failover sends the
    # request to the internal unavailable router instead, which asks the docs app's 503 page.
    sick = [servers["doctor"], servers["doctor-2"]]
    with gateway.client(PATIENT_TOKEN) as client:
        try:
            for server in sick:
                server.ready_status = 503
            wait_until(
                lambda: client.get("/api/doctors/").status_code == 503,
                timeout=20,
                what="every doctor replica out of rotation",
            )
            url, marker = marked("/api/doctors/")
            response = client.post(url, json={})
            fhir = client.get("/fhir/Practitioner/7")
        finally:
            for server in sick:
                server.ready_status = 200
        assert response.status_code == 503
        assert response.json()["server"] == "docs"
        assert urlsplit(response.json()["path"]).path == "/problems/503"
        assert "cause=auth" not in response.json()["path"]
        # A FHIR request's: the docs app sees its path in X-Replaced-Path (an OperationOutcome then).
        assert fhir.status_code == 503
        assert header(fhir.json(), "X-Replaced-Path") == ["/fhir/Practitioner/7"]
        wait_until(lambda: client.get("/api/doctors/").status_code == 200, timeout=20, what="doctor back")
    assert [r for server in sick for r in server.seen(marker)] == []


def test_with_no_healthy_identity_the_public_auth_routes_get_the_503_problem_page(gateway, servers):
    # Register, log in and refresh take no token check: only the failover stands between them
    # and Traefik's plain-text "no available server". Each request comes from an address of its
    # own, under this gateway's small auth rate limit.
    identity = servers["identity"]
    addresses = (f"127.77.{n // 250}.{n % 250 + 1}" for n in range(10_000))

    def post(path: str) -> httpx.Response:
        with gateway.client(source_address=next(addresses)) as client:
            return client.post(path, json={})

    try:
        identity.ready_status = 503
        wait_until(
            lambda: post("/api/auth/login/").status_code == 503, timeout=20, what="identity out of rotation"
        )
        answers = {path: post(path) for path in ("/api/auth/register/", "/api/auth/token/refresh/")}
    finally:
        identity.ready_status = 200
    for path, response in answers.items():
        assert response.status_code == 503, (path, response.text)
        assert response.json()["server"] == "docs", (path, response.text)
        assert urlsplit(response.json()["path"]).path == "/problems/503", path

    def identity_back() -> bool:
        return post("/api/auth/register/").json().get("server") == "identity"

    wait_until(identity_back, timeout=20, what="identity back")


# -- when identity cannot check the token ----------------------------------------------------
# A gateway whose identity is one live stand-in and one dead address that stays in the rotation
# (health checks once an hour): every token check either reaches the live one or is retried there.


@pytest.fixture(scope="module")
def fragile(servers, tmp_path_factory) -> Iterator[tuple[Gateway, EchoServer]]:
    identity = EchoServer("identity", name="identity-live", users=USERS).start()
    dead = EchoServer("identity", name="identity-dead").start()
    dead_url = dead.url
    dead.close()
    backends = {service: [servers[service].url] for service in SERVICES}
    backends["identity"] = [dead_url, identity.url]
    gateway = Gateway(
        workdir=tmp_path_factory.mktemp("fragile"),
        backends=backends,
        env={
            "DOCS_URLS": servers["docs"].url,
            "GATEWAY_HEALTHCHECK_INTERVAL": "1h",
            "GATEWAY_HEALTHCHECK_UNHEALTHY_INTERVAL": "1h",
            "GATEWAY_VERIFY_TIMEOUT": "1s",
        },
    )
    try:
        with gateway.up():
            yield gateway, identity
    finally:
        identity.close()


def test_a_dead_identity_replica_costs_no_token_check(fragile, servers):
    gateway, identity = fragile
    with gateway.client(PATIENT_TOKEN) as client:
        statuses = [client.get("/api/appointments/").status_code for _ in range(10)]
    assert statuses == [200] * 10
    assert len(identity.seen("/internal/verify")) >= 10


@pytest.mark.parametrize("failure", ["5xx", "timeout"])
def test_when_identity_fails_the_token_check_the_client_gets_503_auth_unavailable_and_nothing_is_forwarded(
    fragile, servers, failure
):
    gateway, identity = fragile
    url, marker = marked("/api/appointments/")
    if failure == "5xx":
        identity.verify_status = 500
    else:
        identity.verify_delay = 3.0  # GATEWAY_VERIFY_TIMEOUT is 1s
    try:
        with gateway.client(PATIENT_TOKEN) as client:
            response = client.post(url, json={"timeslot_id": 1})
    finally:
        identity.verify_status = None
        identity.verify_delay = 0.0
    assert response.status_code == 503, response.text
    # The body (and Retry-After) is the docs app's auth_unavailable page, here the stand-in's echo.
    assert response.json()["server"] == "docs"
    assert response.json()["path"] == "/problems/503?cause=auth"
    assert servers["booking"].seen(marker) == []


def test_when_identity_fails_the_token_check_of_a_fhir_request_the_docs_app_sees_its_path(fragile):
    gateway, identity = fragile
    identity.verify_status = 500
    try:
        with gateway.client(PATIENT_TOKEN) as client:
            response = client.get("/fhir/Appointment?patient=Patient/42")
    finally:
        identity.verify_status = None
    assert response.status_code == 503, response.text
    assert response.json()["path"] == "/problems/503?cause=auth"
    # ForwardAuth's X-Forwarded-Uri comes along: the docs app answers an OperationOutcome.
    assert header(response.json(), "X-Forwarded-Uri") == ["/fhir/Appointment?patient=Patient/42"]


def test_clients_that_hang_up_during_their_token_checks_do_not_take_identity_out(servers, tmp_path_factory):
    # Clients hang up mid-request (mobile networks, a load balancer in front, a load test
    # stopping): the token checks they leave behind are cancelled. Counting those as identity's
    # failures (a passive health check) took the only replica out of the rotation, and every
    # protected route answered 503 auth_unavailable to everyone for seconds.
    identity = EchoServer("identity", name="identity-only", users=USERS).start()
    backends = {service: [servers[service].url] for service in SERVICES}
    backends["identity"] = [identity.url]
    gateway = Gateway(
        workdir=tmp_path_factory.mktemp("one-identity"),
        backends=backends,
        env={"DOCS_URLS": servers["docs"].url, "GATEWAY_HEALTHCHECK_INTERVAL": "1h"},
    )

    def hang_up_early(timeout: float) -> None:
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            with (
                gateway.client(PATIENT_TOKEN, timeout=timeout) as impatient,
                suppress(httpx.TimeoutException),
            ):
                impatient.get("/api/appointments/")

    try:
        with gateway.up(), gateway.client(PATIENT_TOKEN) as client:
            assert client.get("/api/appointments/").status_code == 200
            clients = [
                threading.Thread(target=hang_up_early, args=(0.001 * 2 ** (n % 4),)) for n in range(32)
            ]
            for thread in clients:
                thread.start()
            for thread in clients:
                thread.join()
            statuses = [client.get("/api/appointments/").status_code for _ in range(10)]
    finally:
        identity.close()
    assert statuses == [200] * 10


def test_when_no_identity_replica_can_be_reached_the_client_gets_503_auth_unavailable(
    servers, tmp_path_factory
):
    dead = [EchoServer("identity", name=f"identity-dead-{n}").start() for n in range(2)]
    dead_urls = [server.url for server in dead]
    for server in dead:
        server.close()
    backends = {service: [servers[service].url] for service in SERVICES}
    backends["identity"] = dead_urls
    gateway = Gateway(
        workdir=tmp_path_factory.mktemp("no-identity"),
        backends=backends,
        env={"DOCS_URLS": servers["docs"].url},
    )
    with gateway.up():
        url, marker = marked("/api/appointments/")
        with gateway.client(PATIENT_TOKEN) as client:
            # At once (both still count as healthy: connection refused, twice) and once the
            # health checks took both out of the rotation (no server left).
            first = client.get(url)
            wait_until(
                lambda: "Health check failed" in gateway.processes["gateway"].log_text(),
                timeout=20,
                what="the health check of identity's replicas",
            )
            later = client.delete(url)
            public = client.get("/api/schema/booking/openapi.json")
    for response in (first, later):
        assert response.status_code == 503, response.text
        assert response.json()["server"] == "docs"
        assert response.json()["path"] == "/problems/503?cause=auth"
    assert servers["booking"].seen(marker) == []
    assert public.status_code == 200


def test_without_cors_allowed_origins_no_answer_carries_cors_headers(gateway):
    # Same origin only by default (test_gateway_cors.py for CORS_ALLOWED_ORIGINS): a preflight is
    # an ordinary request, refused without a token, and nothing allows another origin.
    origin = {"Origin": "https://app.clinic.example"}
    with gateway.client(headers=origin) as client:
        preflight = client.options("/api/appointments/", headers={"Access-Control-Request-Method": "POST"})
        read = client.get("/api/schema/identity/openapi.json")
    assert preflight.status_code == 401
    assert read.status_code == 200
    for response in (preflight, read):
        assert not [name for name in response.headers if name.lower().startswith("access-control-")]
