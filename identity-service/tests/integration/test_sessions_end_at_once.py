"""A session that ends ends at once: its access tokens are refused by the gateway's check and by
identity's own endpoints, on every replica, and the end is published for the other services."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import jwt
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from support import PASSWORD, assert_problem, bearer

from chassis.messaging.contracts import validate_envelope
from chassis.testkit import wait_until
from chassis.timezones import utcnow
from identity.main import create_app
from identity.models import LoginSession, RefreshToken

CONTRACTS = Path(__file__).resolve().parents[3] / "contracts"


def refused(client, tokens, detail: str) -> None:
    for path in ("/internal/verify", "/api/auth/me/"):
        assert detail in assert_problem(client.get(path, headers=bearer(tokens)), 401)["detail"]


def test_after_logout_the_sessions_access_token_is_refused_and_the_end_is_published(client, api, broker):
    queue = broker.bind_queue("identity.session.revoked")
    user, tokens = api.signed_in()
    assert api.verify(tokens).status_code == 200

    response = client.post("/api/auth/logout/", json={"refresh": tokens["refresh"]}, headers=bearer(tokens))
    assert response.status_code == 204

    refused(client, tokens, "the session has ended")
    [event] = broker.envelopes(queue, 1, user_id=user["id"])
    validate_envelope(event, CONTRACTS)
    assert event["event_type"] == "identity.session.revoked"
    assert event["data"]["reason"] == "logout"
    assert (
        event["data"]["session_id"]
        == jwt.decode(tokens["access"], options={"verify_signature": False})["sid"]
    )


def test_refresh_token_reuse_ends_the_session_for_the_thief_and_the_owner(client, api):
    _, tokens = api.signed_in()
    rotated = client.post("/api/auth/token/refresh/", json={"refresh": tokens["refresh"]}).json()
    # The successor is used (the grace period for a concurrent refresh no longer applies) ...
    latest = client.post("/api/auth/token/refresh/", json={"refresh": rotated["refresh"]}).json()
    assert api.verify(latest).status_code == 200

    # ... so the first token presented again is reuse.
    reused = client.post("/api/auth/token/refresh/", json={"refresh": tokens["refresh"]})
    assert_problem(reused, 401, "refresh_token_reused")

    # Every access token of the session stops working.
    wait_until(lambda: api.verify(latest).status_code == 401, timeout=2)
    for access in (tokens, rotated, latest):
        refused(client, access, "the session has ended")


def test_a_password_change_ends_every_other_session_but_not_the_callers(client, api):
    user, this_session = api.signed_in()
    other_session = api.login(user["email"])
    response = client.patch(
        "/api/auth/me/",
        json={"password": "a brand new passphrase", "current_password": PASSWORD},
        headers=bearer(this_session),
    )
    assert response.status_code == 200
    refused(client, other_session, "the session has ended")
    assert api.verify(this_session).status_code == 200


def test_another_replica_refuses_the_ended_sessions_token_within_a_second(client, api, make_settings):
    _, tokens = api.signed_in()
    other = create_app(make_settings())
    with TestClient(other) as replica:
        assert replica.get("/internal/verify", headers=bearer(tokens)).status_code == 200  # now cached there
        client.post("/api/auth/logout/", json={"refresh": tokens["refresh"]}, headers=bearer(tokens))
        wait_until(
            lambda: replica.get("/internal/verify", headers=bearer(tokens)).status_code == 401, timeout=1
        )


def test_refreshing_never_extends_a_session_past_its_absolute_lifetime(client, api, app, broker):
    queue = broker.bind_queue("identity.session.revoked")
    user, tokens = api.signed_in()
    db = app.state.components.db
    with db.transaction() as session:
        login = session.scalars(select(LoginSession).where(LoginSession.user_id == user["id"])).one()
        # Every refresh token of the session expires with it, at the latest.
        refresh_expiry = session.scalar(
            select(RefreshToken.expires_at).where(RefreshToken.family_id == login.id)
        )
        assert refresh_expiry <= login.expires_at
        assert login.expires_at - login.started_at == timedelta(days=30)
        # Thirty days later (the refresh token itself would still be valid).
        session.execute(
            update(LoginSession)
            .where(LoginSession.id == login.id)
            .values(started_at=utcnow() - timedelta(days=31), expires_at=utcnow() - timedelta(seconds=1))
        )
    response = client.post("/api/auth/token/refresh/", json={"refresh": tokens["refresh"]})
    assert_problem(response, 401, "invalid_refresh_token")
    [event] = broker.envelopes(queue, 1, user_id=user["id"])
    assert event["data"]["reason"] == "expired"
    refused(client, tokens, "the session has ended")
