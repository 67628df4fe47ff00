"""Login throttling (spec/API.md "Authentication"): failed logins per account and per address."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from starlette.requests import Request
from support import PASSWORD, Api, assert_problem, bearer, unique_email

from identity.adapters.throttle import address_key, client_address
from identity.main import create_app

_addresses = itertools.count(1)


def new_address() -> str:
    """A client address no other test uses (the gateway's X-Forwarded-For says it)."""
    n = next(_addresses)
    return f"198.18.{n // 250}.{n % 250 + 1}"


def attempt(client: TestClient, email: str, password: str, address: str):
    return client.post(
        "/api/auth/login/", json={"email": email, "password": password}, headers={"X-Forwarded-For": address}
    )


def test_an_account_is_throttled_after_five_failures_also_for_the_right_password(api: Api, client):
    user = api.register()
    address = new_address()
    for _ in range(5):
        assert_problem(attempt(client, user["email"], "wrong password", address), 401, "invalid_credentials")
    for password in ("wrong password", PASSWORD):
        throttled = attempt(client, user["email"], password, address)
        body = assert_problem(throttled, 429, "login_throttled")
        assert 1 <= int(throttled.headers["retry-after"]) <= 900
        assert body["retry_after"] == int(throttled.headers["retry-after"])
    # From any other address too: it is the account that is throttled.
    assert_problem(attempt(client, user["email"], PASSWORD, new_address()), 429, "login_throttled")


def test_other_accounts_keep_working_from_the_address_of_a_throttled_account(api: Api, client):
    victim, other = api.register(), api.register()
    address = new_address()
    for _ in range(6):
        attempt(client, victim["email"], "wrong password", address)
    assert_problem(attempt(client, victim["email"], PASSWORD, address), 429, "login_throttled")
    assert attempt(client, other["email"], PASSWORD, address).status_code == 200


def test_an_unknown_email_is_throttled_exactly_like_an_account(client):
    email, address = unique_email("nobody"), new_address()
    statuses = [attempt(client, email, "any password", address).status_code for _ in range(6)]
    assert statuses == [401] * 5 + [429]


def test_sixty_successful_logins_in_a_row_from_one_address_all_succeed(api: Api, client):
    user = api.register()
    address = new_address()
    statuses = {attempt(client, user["email"], PASSWORD, address).status_code for _ in range(60)}
    assert statuses == {200}


def test_an_address_is_throttled_after_a_hundred_failures_across_accounts(client):
    address = new_address()
    # Twenty accounts, five failures each: no account reaches its own limit's refusal.
    emails = [unique_email("sprayed") for _ in range(20)]
    statuses = [
        attempt(client, email, "Spring2026!", address).status_code for email in emails for _ in range(5)
    ]
    assert statuses == [401] * 100
    fresh = unique_email("fresh")
    assert_problem(attempt(client, fresh, "Spring2026!", address), 429, "login_throttled")
    # The same account from another address is not throttled.
    assert attempt(client, fresh, "Spring2026!", new_address()).status_code == 401


def test_an_ipv6_address_is_counted_by_its_64(client):
    emails = [unique_email("v6") for _ in range(20)]
    for n, email in enumerate(emails):
        for _ in range(5):
            attempt(client, email, "guess", f"2001:db8:13:1::{n * 5 + _ + 1:x}")
    assert_problem(
        attempt(client, unique_email("v6"), "guess", "2001:db8:13:1:ffff::1"), 429, "login_throttled"
    )
    assert attempt(client, unique_email("v6"), "guess", "2001:db8:13:2::1").status_code == 401


def test_concurrent_guesses_at_one_account_get_no_more_than_the_limit_checked(api: Api, client):
    user = api.register()
    statuses: list[int] = []
    lock = threading.Lock()

    def guess(address: str) -> None:
        status = attempt(client, user["email"], "concurrent guess", address).status_code
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=guess, args=(new_address(),)) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [401] * 5 + [429] * 7


def test_a_wrong_current_password_counts_as_a_failed_login(api: Api, client):
    user, tokens = api.signed_in()
    address = new_address()
    for _ in range(5):
        refused = client.patch(
            "/api/auth/me/",
            json={"password": "a brand new secret", "current_password": "not it"},
            headers={**bearer(tokens), "X-Forwarded-For": address},
        )
        assert_problem(refused, 422, "current_password_invalid")
    throttled = client.patch(
        "/api/auth/me/",
        json={"password": "a brand new secret", "current_password": PASSWORD},
        headers={**bearer(tokens), "X-Forwarded-For": address},
    )
    assert_problem(throttled, 429, "login_throttled")
    assert "retry-after" in throttled.headers
    assert_problem(attempt(client, user["email"], PASSWORD, new_address()), 429, "login_throttled")
    # Changing the name needs no password, and still works.
    assert (
        client.patch("/api/auth/me/", json={"full_name": "Still Me"}, headers=bearer(tokens)).status_code
        == 200
    )


def test_a_right_current_password_is_no_failure(api: Api, client):
    user, tokens = api.signed_in()
    new_password = "a brand new secret"
    for current, new in [(PASSWORD, new_password), (new_password, PASSWORD)] * 3:
        changed = client.patch(
            "/api/auth/me/", json={"password": new, "current_password": current}, headers=bearer(tokens)
        )
        assert changed.status_code == 200, changed.text
    assert attempt(client, user["email"], PASSWORD, new_address()).status_code == 200


@pytest.fixture
def replicas(make_settings) -> Iterator[list[TestClient]]:
    with TestClient(create_app(make_settings())) as one, TestClient(create_app(make_settings())) as two:
        yield [one, two]


def test_replicas_count_the_same_failures(api: Api, replicas: list[TestClient]):
    user = api.register()
    address = new_address()
    for n in range(5):
        assert attempt(replicas[n % 2], user["email"], "wrong", address).status_code == 401
    for replica in replicas:
        assert_problem(attempt(replica, user["email"], PASSWORD, address), 429, "login_throttled")


def test_the_client_address_is_the_gateways_last_x_forwarded_for_entry():
    def request(forwarded: list[str], peer: str = "10.0.0.5") -> Request:
        headers = [(b"x-forwarded-for", value.encode()) for value in forwarded]
        return Request({"type": "http", "headers": headers, "client": (peer, 1234)})

    assert client_address(request(["203.0.113.9"]), 1) == "203.0.113.9"
    # A client-sent entry before the gateway's own is not believed.
    assert client_address(request(["6.6.6.6, 203.0.113.9"]), 1) == "203.0.113.9"
    assert client_address(request(["6.6.6.6", "198.51.100.1, 203.0.113.9"]), 2) == "198.51.100.1"
    assert client_address(request([]), 1) == "10.0.0.5"
    assert client_address(request(["203.0.113.9"]), 0) == "10.0.0.5"
    assert address_key("2001:db8:1:2:3:4:5:6") == "2001:db8:1:2::/64"
    assert address_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert address_key("192.0.2.7") == "192.0.2.7"
