"""The HTTP edge every service shares (``create_service_app``): what hostile or unlucky
requests get. Each test pins a bug the robustness suite's fuzzer found through the gateway."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
import uvicorn
from fastapi import APIRouter, Request
from fastapi.testclient import TestClient
from pydantic import BaseModel
from sqlalchemy import text

from chassis.app import MAX_BODY_BYTES, create_service_app
from chassis.db import Database
from chassis.testkit import TokenMinter, free_port, wait_until
from chassis.timezones import check_representable, date_text, date_time_text, day_bounds

PROBLEM = "application/problem+json"


class Note(BaseModel):
    text: str


def build_app(database_url: str | None = None):
    router = APIRouter()

    @router.get("/api/boom/")
    def boom() -> dict:
        raise RuntimeError("an unexpected bug")

    @router.get("/api/fine/")
    def fine() -> dict:
        return {"ok": True}

    @router.post("/api/notes/", status_code=201)
    def create_note(note: Note) -> Note:
        return note

    @router.get("/api/notes/")
    def list_notes() -> list[Note]:
        return []

    @router.get("/api/echo/")
    def echo(request: Request, value: str) -> dict:
        with Database(database_url, pool_size=1, max_overflow=0).engine.connect() as connection:
            return {"value": connection.execute(text("SELECT CAST(:v AS text)"), {"v": value}).scalar()}

    @router.get("/api/unreachable/")
    def unreachable() -> dict:
        database = Database("postgresql+psycopg://postgres@127.0.0.1:1/nowhere?connect_timeout=1")
        database.ping()
        return {}

    @router.get("/api/small/")
    def small(value: int) -> dict:
        with Database(database_url, pool_size=1, max_overflow=0).engine.connect() as connection:
            return {"value": connection.execute(text("SELECT CAST(:v AS integer)"), {"v": value}).scalar()}

    return service_app(router)


def service_app(router: APIRouter, database: Database | None = None):
    """A chassis app serving ``router`` (on ``database`` when given), with no readiness checks."""
    return create_service_app(
        name="test",
        title="test",
        description="test",
        routers=[router],
        status_of={},
        token_verifier=TokenMinter().verifier(),
        readiness={},
        database=database,
    )


@pytest.fixture
def client() -> TestClient:
    return TestClient(build_app(), raise_server_exceptions=False)


class Server:
    """The app served by a real uvicorn on a free port, for what only a real server shows."""

    def __init__(self, app) -> None:
        self.port = free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def read_response(sock: socket.socket) -> tuple[int, bytes]:
    """One HTTP/1.1 response with a Content-Length: its status and body ('' if the peer closed)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return 0, b""
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(
        next(
            line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
        )
    )
    while len(body) < length:
        body += sock.recv(65536)
    return int(head.split(b" ")[1]), body


def test_an_unexpected_error_is_a_500_problem_and_the_connection_stays_usable():
    # The gateway keeps connections to a service alive. uvicorn used to close the
    # connection of a request that raised, after answering it; the gateway's next request
    # on that connection then failed with a 502.
    with Server(build_app()) as server, socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"GET /api/boom/ HTTP/1.1\r\nHost: t\r\n\r\n")
        status, body = read_response(sock)
        assert status == 500
        assert b"an unexpected bug" not in body and b"Traceback" not in body
        sock.sendall(b"GET /api/fine/ HTTP/1.1\r\nHost: t\r\n\r\n")
        assert read_response(sock) == (200, b'{"ok":true}')


def test_a_declared_body_over_the_limit_is_a_413_problem(client):
    response = client.post(
        "/api/notes/",
        content=b"x" * (MAX_BODY_BYTES + 1),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.json()["code"] == "body_too_large"


def test_a_streamed_body_over_the_limit_is_a_413_problem(client):
    def chunks() -> Iterator[bytes]:
        yield b'{"text": "'
        for _ in range(20):
            yield b"x" * 65536
        yield b'"}'

    response = client.post("/api/notes/", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.headers["content-type"].startswith(PROBLEM)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_a_body_that_is_not_json_is_a_415_problem(client, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post("/api/notes/", content=b'{"text": "hi"}', headers=headers)
    assert response.status_code == 415
    assert response.headers["content-type"].startswith(PROBLEM)


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "application/x+json"]
)
def test_json_bodies_pass(client, content_type):
    response = client.post("/api/notes/", content=b'{"text": "hi"}', headers={"Content-Type": content_type})
    assert response.status_code == 201, response.text


def test_undecodable_json_is_a_400_problem(client):
    response = client.post(
        "/api/notes/", content=b'{"text": "\xff"}', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["code"] == "malformed_json"


def test_a_405_lists_every_method_of_the_path(client):
    response = client.delete("/api/notes/")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"
    assert response.headers["content-type"].startswith(PROBLEM)


def test_head_is_answered_as_get_without_the_body(client):
    got, head = client.get("/api/fine/"), client.head("/api/fine/")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == got.headers["content-length"] == str(len(got.content))
    assert head.headers["content-type"] == got.headers["content-type"]
    missing = client.head("/api/nothing-here/")
    assert missing.status_code == 404
    assert missing.content == b""
    assert missing.headers["content-type"].startswith(PROBLEM)


def test_the_openapi_document_lists_the_body_problems(client):
    operation = client.get("/api/schema/test/openapi.json").json()["paths"]["/api/notes/"]["post"]
    assert {"400", "413", "415", "422"} <= set(operation["responses"])
    assert (
        "413"
        not in client.get("/api/schema/test/openapi.json").json()["paths"]["/api/fine/"]["get"]["responses"]
    )


def test_a_value_the_database_refuses_is_a_422_problem(new_database):
    client = TestClient(build_app(new_database()), raise_server_exceptions=False)
    nul = client.get("/api/echo/", params={"value": "a\u0000b"})
    assert nul.status_code == 422
    assert nul.json()["code"] == "unstorable_value"
    assert "NUL" in nul.json()["detail"]
    overflow = client.get("/api/small/", params={"value": 2**40})
    assert overflow.status_code == 422
    assert "integer" not in overflow.text.lower() or "out of the range" in overflow.json()["detail"]


def test_a_database_out_of_reach_is_a_503_the_client_may_retry(client):
    # Found by the soak: with PostgreSQL out of connections every request failed with a 500.
    response = client.get("/api/unreachable/")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json()["code"] == "database_unavailable"
    assert "127.0.0.1" not in response.text and "psycopg" not in response.text


@pytest.mark.parametrize("zone", ["UTC", "America/New_York", "Pacific/Kiritimati"])
def test_the_days_at_the_ends_of_the_calendar_have_bounds(zone):
    tz = ZoneInfo(zone)
    first_start, first_end = day_bounds(date(1, 1, 1), tz)
    last_start, last_end = day_bounds(date(9999, 12, 31), tz)
    assert first_start < first_end <= last_start < last_end
    assert last_end.tzinfo is not None and last_end.astimezone(UTC).year == 9999


@pytest.mark.parametrize(
    "value",
    [date(1, 1, 1), date(9999, 12, 31), datetime(9999, 12, 31, 22, tzinfo=UTC), datetime(1, 1, 1, 5)],
)
def test_request_times_at_the_ends_of_the_calendar_are_refused(value):
    with pytest.raises(ValueError, match="must be between"):
        check_representable(value)
    assert check_representable(date(2030, 1, 1)) == date(2030, 1, 1)


@pytest.mark.parametrize(
    "value",
    ["2030-03-04T09:30:00Z", "2030-03-04T09:30", "2030-03-04 09:30:00.123456+05:30", "2030-03-04t09:30:00z"],
)
def test_request_date_times_in_rfc_3339_pass(value):
    assert date_time_text(value) == value


@pytest.mark.parametrize(
    "value",
    [1900000000, "1900000000", "1900000000.5", "2030-03-04", "2030-03-04T9:30Z", "2030-03-04T09:30+0530", ""],
)
def test_request_date_times_that_pydantic_would_read_otherwise_are_refused(value):
    with pytest.raises(ValueError, match="RFC 3339"):
        date_time_text(value)


@pytest.mark.parametrize("value", [1899849600, "1899849600", "2030-3-4", "2030-03-04T00:00:00Z", "20300304"])
def test_request_dates_that_are_not_yyyy_mm_dd_are_refused(value):
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        date_text(value)
    assert date_text("2030-03-04") == "2030-03-04"


def test_an_app_closes_its_database_connections_when_it_stops(new_database):
    # A suite that starts an app per test (every service's) ran PostgreSQL out of connection
    # slots while stopped apps kept their pools until garbage collection.
    url = new_database()
    database = Database(url, pool_size=3, max_overflow=0)
    router = APIRouter()

    @router.get("/api/busy/")
    def busy() -> dict:
        with database.engine.connect() as connection:
            return {"n": connection.execute(text("SELECT 1")).scalar()}

    app = service_app(router, database)
    name = url.rsplit("/", 1)[-1]
    count = f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{name}' AND pid <> pg_backend_pid()"

    def connections() -> int:
        probe = Database(url, pool_size=1, max_overflow=0)
        try:
            with probe.engine.connect() as connection:
                return connection.execute(text(count)).scalar()
        finally:
            probe.dispose()

    before = connections()  # the fixture's own
    with TestClient(app) as client:
        assert client.get("/api/busy/").json() == {"n": 1}
        assert connections() > before  # the app's pools hold theirs while it runs
    # A closed connection's backend leaves pg_stat_activity a moment after the client hangs up.
    wait_until(lambda: connections() == before, timeout=10, what="the app's connections closed")
