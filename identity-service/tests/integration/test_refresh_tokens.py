import threading
from datetime import timedelta

import jwt
from sqlalchemy import update
from support import assert_problem, bearer

from identity.models import RefreshToken
from identity.security import refresh_token_digest


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


def test_concurrent_refreshes_with_one_token_let_exactly_one_succeed(client, api):
    _, tokens = api.signed_in()
    barrier = threading.Barrier(5)
    statuses = []

    def attempt():
        barrier.wait()
        statuses.append(refresh(client, tokens["refresh"]).status_code)

    threads = [threading.Thread(target=attempt) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200, 401, 401, 401, 401]


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
