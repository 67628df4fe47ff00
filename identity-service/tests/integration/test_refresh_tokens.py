import dataclasses
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import jwt
from fastapi.testclient import TestClient
from sqlalchemy import select, text, update
from support import PASSWORD, assert_problem, bearer

from chassis.testkit import lock_waiters, wait_until
from identity.adapters.security import Passwords, new_refresh_token, open_successor, refresh_token_digest
from identity.main import create_app
from identity.models import LoginSession, RefreshToken


def refresh(client, token):
    return client.post("/api/auth/token/refresh/", json={"refresh": token})


def test_a_refresh_gives_new_tokens_and_uses_up_the_old_refresh_token(client, api):
    _, tokens = api.signed_in()
    response = refresh(client, tokens["refresh"])
    assert response.status_code == 200
    renewed = response.json()
    assert renewed["refresh"] != tokens["refresh"] and renewed["access"] != tokens["access"]
    assert client.get("/api/auth/me/", headers=bearer(renewed)).status_code == 200
    assert refresh(client, renewed["refresh"]).status_code == 200


def test_reusing_a_rotated_refresh_token_revokes_its_whole_session(client, api):
    user, tokens = api.signed_in()
    other_session = api.login(user["email"])
    first = refresh(client, tokens["refresh"]).json()
    second = refresh(client, first["refresh"]).json()

    assert_problem(refresh(client, tokens["refresh"]), 401, "refresh_token_reused")

    assert_problem(refresh(client, second["refresh"]), 401, "invalid_refresh_token")
    assert refresh(client, other_session["refresh"]).status_code == 200


def test_concurrent_refreshes_with_one_token_all_get_the_same_successor(client, api):
    _, tokens = api.signed_in()
    barrier = threading.Barrier(5)
    answers = []

    def attempt():
        barrier.wait()
        answers.append(refresh(client, tokens["refresh"]))

    threads = [threading.Thread(target=attempt) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [answer.status_code for answer in answers] == [200] * 5
    assert len({answer.json()["refresh"] for answer in answers}) == 1
    # The session lives on: every access token works, and the one successor rotates once.
    for answer in answers:
        assert client.get("/api/auth/me/", headers=bearer(answer.json())).status_code == 200
    assert refresh(client, answers[0].json()["refresh"]).status_code == 200


def test_a_token_presented_again_after_the_grace_period_is_reuse_and_ends_the_session(client, api, app):
    _, tokens = api.signed_in()
    first = refresh(client, tokens["refresh"]).json()
    with app.state.db.transaction() as session:
        session.execute(
            update(RefreshToken)
            .where(RefreshToken.token_hash == refresh_token_digest(tokens["refresh"]))
            .values(used_at=RefreshToken.used_at - timedelta(seconds=11))
        )
    assert_problem(refresh(client, tokens["refresh"]), 401, "refresh_token_reused")
    assert_problem(refresh(client, first["refresh"]), 401, "invalid_refresh_token")


def test_a_token_presented_again_once_its_successor_was_used_is_reuse_even_within_the_grace(client, api):
    _, tokens = api.signed_in()
    first = refresh(client, tokens["refresh"]).json()
    again = refresh(client, tokens["refresh"]).json()
    assert again["refresh"] == first["refresh"]
    refresh(client, first["refresh"])
    assert_problem(refresh(client, tokens["refresh"]), 401, "refresh_token_reused")


def test_without_a_grace_period_a_second_refresh_is_reuse(make_settings, api):
    with TestClient(create_app(make_settings(refresh_reuse_grace_seconds=0))) as strict:
        _, tokens = api.signed_in()
        first = refresh(strict, tokens["refresh"])
        assert first.status_code == 200
        assert_problem(refresh(strict, tokens["refresh"]), 401, "refresh_token_reused")
        assert_problem(refresh(strict, first.json()["refresh"]), 401, "invalid_refresh_token")


def test_the_kept_successor_opens_only_with_the_token_it_succeeds(client, api, app):
    _, tokens = api.signed_in()
    successor = refresh(client, tokens["refresh"]).json()["refresh"]
    with app.state.db.sessions() as session:
        sealed = session.scalar(
            select(RefreshToken.successor_sealed).where(
                RefreshToken.token_hash == refresh_token_digest(tokens["refresh"])
            )
        )
    assert sealed is not None and successor.encode() not in sealed
    assert open_successor(tokens["refresh"], sealed) == successor
    assert open_successor(successor, sealed) is None
    assert open_successor(refresh_token_digest(tokens["refresh"]).hex(), sealed) is None


def test_an_expired_refresh_token_is_refused(client, api, app):
    _, tokens = api.signed_in()
    with app.state.db.transaction() as session:
        session.execute(
            update(RefreshToken)
            .where(RefreshToken.token_hash == refresh_token_digest(tokens["refresh"]))
            .values(
                issued_at=RefreshToken.issued_at - timedelta(days=30),
                expires_at=RefreshToken.issued_at - timedelta(days=16),
            )
        )
    assert_problem(refresh(client, tokens["refresh"]), 401, "invalid_refresh_token")


def test_an_unknown_refresh_token_is_refused(client):
    response = refresh(client, "made-up-token")
    assert_problem(response, 401, "invalid_refresh_token")
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_an_access_token_is_no_refresh_token(client, api):
    _, tokens = api.signed_in()
    assert_problem(refresh(client, tokens["access"]), 401)


def test_a_deactivated_users_refresh_token_is_refused(client, api):
    user, tokens = api.signed_in()
    _, admin_tokens = api.admin()
    client.delete(f"/api/users/{user['id']}/", headers=bearer(admin_tokens))
    assert_problem(refresh(client, tokens["refresh"]), 401, "invalid_refresh_token")


def test_a_refreshed_access_token_carries_the_current_role(client, api):
    user, tokens = api.signed_in()
    _, admin_tokens = api.admin()
    client.patch(f"/api/users/{user['id']}/", headers=bearer(admin_tokens), json={"role": "doctor"})
    renewed = refresh(client, tokens["refresh"]).json()
    assert jwt.decode(renewed["access"], options={"verify_signature": False})["role"] == "doctor"


def test_logging_out_revokes_the_session_of_the_refresh_token(client, api):
    user, tokens = api.signed_in()
    other_session = api.login(user["email"])
    rotated = refresh(client, tokens["refresh"]).json()
    response = client.post("/api/auth/logout/", json={"refresh": rotated["refresh"]}, headers=bearer(rotated))
    assert response.status_code == 204 and response.content == b""
    assert_problem(refresh(client, rotated["refresh"]), 401)
    assert refresh(client, other_session["refresh"]).status_code == 200


def test_logging_out_with_someone_elses_refresh_token_changes_nothing(client, api):
    _, mine = api.signed_in()
    _, theirs = api.signed_in()
    response = client.post("/api/auth/logout/", json={"refresh": theirs["refresh"]}, headers=bearer(mine))
    assert response.status_code == 204
    assert refresh(client, theirs["refresh"]).status_code == 200


def test_logging_out_needs_an_access_token(client, api):
    _, tokens = api.signed_in()
    assert_problem(client.post("/api/auth/logout/", json={"refresh": tokens["refresh"]}), 401)


def test_a_reused_token_refreshed_while_its_session_logs_out_gives_both_their_answers(client, api, app):
    # The reuse ends the session (its row, then its tokens) while the logout ends it too: the two
    # must take turns, not deadlock (a deadlock's victim would get a 503).
    _, tokens = api.signed_in()
    rotated = refresh(client, tokens["refresh"]).json()
    latest = refresh(client, rotated["refresh"]).json()  # so the first token is reuse now
    db = app.state.db
    with ThreadPoolExecutor(max_workers=2) as pool:
        with db.transaction() as session:  # the first token's row locked, as another refresh would
            session.execute(
                select(RefreshToken.id)
                .where(RefreshToken.token_hash == refresh_token_digest(tokens["refresh"]))
                .with_for_update()
            )
            reuse = pool.submit(refresh, client, tokens["refresh"])
            wait_until(lambda: lock_waiters(db) >= 1 or reuse.done(), what="the refresh to wait")
            logout = pool.submit(
                client.post, "/api/auth/logout/", json={"refresh": latest["refresh"]}, headers=bearer(latest)
            )
            wait_until(lambda: lock_waiters(db) >= 2 or logout.done(), what="the logout to wait")
        reused, logged_out = reuse.result(timeout=15), logout.result(timeout=15)

    assert_problem(reused, 401, "refresh_token_reused")
    assert logged_out.status_code == 204, logged_out.text
    assert_problem(refresh(client, latest["refresh"]), 401, "invalid_refresh_token")


def test_a_login_by_a_replica_of_the_release_before_sessions_gets_a_session_and_refreshes(client, api, app):
    # A rolling upgrade: an old replica (before migration 0006) stores a refresh token of a new
    # family and no session. Its insert must not fail, and the token works on this release.
    user = api.register()
    token, issued = new_refresh_token(), datetime.now(UTC)
    family = uuid.uuid4()
    old_login = text(
        "INSERT INTO refresh_tokens (token_hash, family_id, user_id, issued_at, expires_at)"
        " VALUES (:hash, :family, :user, :issued, :expires)"
    )
    with app.state.db.transaction() as session:
        session.execute(
            old_login,
            {
                "hash": refresh_token_digest(token),
                "family": family,
                "user": user["id"],
                "issued": issued,
                "expires": issued + timedelta(days=1),
            },
        )
    with app.state.db.transaction() as session:
        login = session.get(LoginSession, family)
        assert (login.user_id, login.started_at, login.ended_at) == (user["id"], issued, None)
        assert login.expires_at - login.started_at == timedelta(days=30)
    renewed = refresh(client, token)
    assert renewed.status_code == 200, renewed.text
    assert client.get("/api/auth/me/", headers=bearer(renewed.json())).json()["id"] == user["id"]


def test_a_refresh_while_the_password_changes_on_another_device_gets_its_answer(
    client, api, app, make_settings
):
    # The change holds the account's row while it hashes the new password, then ends the other
    # sessions; the refresh of one of them inserts a token (whose foreign key reads the account's
    # row). The two must take turns, not deadlock (a 503 for one of them).
    user, this_device = api.signed_in()
    other_device = api.login(user["email"])
    db = app.state.db
    with ThreadPoolExecutor(max_workers=1) as pool:
        refreshing = []

        class Interleaving(Passwords):
            def hash(self, password):
                hashed = super().hash(password)
                if not refreshing:  # with the account's row locked
                    refreshing.append(pool.submit(refresh, client, other_device["refresh"]))
                    wait_until(lambda: lock_waiters(db) >= 1 or refreshing[0].done(), what="the refresh")
                return hashed

        parts = app.state.components
        app.state.components = dataclasses.replace(
            parts, passwords=Interleaving.from_settings(make_settings())
        )
        try:
            new = {"current_password": PASSWORD, "password": "An0ther-Long-Passphrase"}
            changed = client.patch("/api/auth/me/", json=new, headers=bearer(this_device))
        finally:
            app.state.components = parts
        refreshed = refreshing[0].result(timeout=15)

    assert changed.status_code == 200, changed.text
    assert refreshed.status_code in (200, 401), refreshed.text  # before the change, or refused by it
    # Either way the other device is signed out, and this one is not.
    assert client.get("/api/auth/me/", headers=bearer(this_device)).status_code == 200
    if refreshed.status_code == 200:
        assert_problem(client.get("/api/auth/me/", headers=bearer(refreshed.json())), 401)
