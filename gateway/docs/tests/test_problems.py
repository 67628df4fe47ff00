"""The gateway's own errors (429, 502, 503, 504) as problem+json: ``GET /problems/{status}``."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from clinic_docs.config import SERVICES, Settings
from clinic_docs.main import create_app
from clinic_docs.problems import go_duration_seconds, retry_after


@pytest.fixture(scope="module")
def client():
    settings = Settings(LOG_FORMAT="text", **{f"{s.upper()}_URLS": "http://127.0.0.1:9" for s in SERVICES})
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (429, "rate_limited"),
        (502, "service_unreachable"),
        (503, "service_unavailable"),
        (504, "service_timeout"),
    ],
)
def test_each_gateway_status_has_a_problem_body_with_that_status(client, status, code):
    # Traefik sends the body with the status it caught; the page's own status is the same anyway.
    response = client.get(f"/problems/{status}")
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert (body["status"], body["code"]) == (status, code)
    assert body["title"] and body["detail"]


def test_a_429_says_when_the_rate_limit_has_room_again(client):
    # A limit of 10 a minute: one request's room every 6 seconds.
    assert client.get("/problems/429?average=10&period=1m").headers["retry-after"] == "6"
    assert client.get("/problems/429?average=3&period=1h").headers["retry-after"] == "1200"
    assert "retry-after" not in client.get("/problems/502").headers


def test_a_503_is_auth_unavailable_when_the_token_could_not_be_checked_and_says_when_to_retry(client):
    for method in ("GET", "POST", "DELETE"):
        response = client.request(method, "/problems/503?cause=auth")
        assert response.status_code == 503
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "auth_unavailable"
        assert response.headers["retry-after"] == "2"
    assert client.get("/problems/503").headers["retry-after"] == "2"
    assert client.get("/problems/503?cause=other").json()["code"] == "service_unavailable"
    assert client.get("/problems/502?cause=auth").json()["code"] == "service_unreachable"


def test_a_status_the_gateway_does_not_produce_has_no_page(client):
    response = client.get("/problems/418")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1m", 60),
        ("1h30m", 5400),
        ("500ms", 0.5),
        ("1.5s", 1.5),
        ("90s", 90),
        ("", None),
        ("1 m", None),
        ("x", None),
    ],
)
def test_go_durations_are_read_as_traefik_reads_them(text, seconds):
    assert go_duration_seconds(text) == seconds


@pytest.mark.parametrize(
    ("average", "period", "seconds"),
    [
        ("10", "1m", 6),
        ("7", "1m", 9),
        ("100", "1s", 1),
        ("0", "1m", 1),
        ("ten", "1m", 1),
        ("10", "soon", 1),
        (None, None, 1),
    ],
)
def test_retry_after_is_the_refill_time_of_one_request_rounded_up(average, period, seconds):
    assert retry_after(average, period) == seconds


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE"])
def test_the_not_found_page_answers_any_method(client, method):
    # The gateway's api-not-found router sends every unknown /api/ request here as it came.
    response = client.request(method, "/problems/404", json={"anything": 1})
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
