"""Login throttling through the real gateway (spec/API.md "Authentication"): identity counts
failed logins per account and per client address as the gateway saw it (a client's own
X-Forwarded-For is not believed), and a clinic behind one address still logs everyone in."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from .api import PASSWORD, problem, register, unique_email
from .stack import Stack, StackFactory, next_source_address

ADDRESS_FAILURES = 6
ACCOUNT_FAILURES = 3


@pytest.fixture(scope="module")
def throttled_stack(stacks: StackFactory) -> Iterator[Stack]:
    """The gateway's rate limit at its defaults; identity's throttling with small limits."""
    stack = stacks.start(
        "throttle",
        env={
            "AUTH_RATE_LIMIT_AVERAGE": "120",
            "AUTH_RATE_LIMIT_PERIOD": "1m",
            "AUTH_RATE_LIMIT_BURST": "120",
            "LOGIN_THROTTLE_ADDRESS_FAILURES": str(ADDRESS_FAILURES),
            "LOGIN_THROTTLE_ACCOUNT_FAILURES": str(ACCOUNT_FAILURES),
        },
    )
    yield stack
    stack.close()


def test_sixty_logins_a_minute_from_one_address_go_through_with_the_default_settings(throttled_stack):
    with throttled_stack.client() as client:
        user = register(client)
        statuses = [
            client.post("/api/auth/login/", json={"email": user["email"], "password": PASSWORD}).status_code
            for _ in range(60)
        ]
    assert statuses == [200] * 60


def test_failures_count_for_the_address_the_gateway_saw_not_the_one_a_client_claims(throttled_stack):
    with throttled_stack.client() as other_client:
        user = register(other_client)
    with throttled_stack.client() as attacker:
        for n in range(ADDRESS_FAILURES):
            refused = attacker.post(
                "/api/auth/login/",
                json={"email": unique_email("sprayed"), "password": "Spring2026!"},
                headers={"X-Forwarded-For": f"203.0.113.{n + 1}"},
            )
            problem(refused, 401)
        throttled = attacker.post(
            "/api/auth/login/",
            json={"email": user["email"], "password": PASSWORD},
            headers={"X-Forwarded-For": f"198.51.100.{uuid.uuid4().int % 250 + 1}"},
        )
        assert problem(throttled, 429)["code"] == "login_throttled"
        assert int(throttled.headers["retry-after"]) >= 1
    # The account itself is fine, from any other address.
    with throttled_stack.client(source_address=next_source_address()) as client:
        ok = client.post("/api/auth/login/", json={"email": user["email"], "password": PASSWORD})
        assert ok.status_code == 200, ok.text


def test_an_account_past_its_failures_is_throttled_from_every_address_others_are_not(throttled_stack):
    with throttled_stack.client() as client:
        victim, neighbour = register(client), register(client)
    for _ in range(ACCOUNT_FAILURES):
        with throttled_stack.client() as client:
            problem(
                client.post("/api/auth/login/", json={"email": victim["email"], "password": "guess"}), 401
            )
    with throttled_stack.client() as desk:
        right = desk.post("/api/auth/login/", json={"email": victim["email"], "password": PASSWORD})
        assert problem(right, 429)["code"] == "login_throttled"
        assert (
            desk.post(
                "/api/auth/login/", json={"email": neighbour["email"], "password": PASSWORD}
            ).status_code
            == 200
        )
