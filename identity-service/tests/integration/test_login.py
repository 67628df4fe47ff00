import dataclasses
import threading

import jwt
from sqlalchemy import select
from support import PASSWORD, assert_problem, bearer, unique_email

from identity.adapters.security import Passwords
from identity.models import User


def test_logging_in_returns_an_access_and_a_refresh_token(api):
    user = api.register()
    tokens = api.login(user["email"].upper())
    assert set(tokens) == {"access", "refresh", "token_type", "expires_in"}
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 900
    header = jwt.get_unverified_header(tokens["access"])
    assert header["alg"] == "EdDSA" and header["kid"]


def test_a_wrong_password_and_an_unknown_email_get_the_same_401(client, api):
    user = api.register()
    wrong = client.post("/api/auth/login/", json={"email": user["email"], "password": "not the password"})
    unknown = client.post("/api/auth/login/", json={"email": unique_email(), "password": PASSWORD})
    assert_problem(wrong, 401, "invalid_credentials")
    assert_problem(unknown, 401, "invalid_credentials")
    assert wrong.json() == unknown.json()
    assert wrong.headers["www-authenticate"].startswith("Bearer")


def test_an_unknown_email_still_costs_one_password_verification(client, app):
    counted = []

    class CountingPasswords(Passwords):
        def verify(self, password_hash, password):
            counted.append(password_hash)
            return super().verify(password_hash, password)

    parts = app.state.components
    app.state.components = dataclasses.replace(
        parts, passwords=CountingPasswords(time_cost=1, memory_cost=8, parallelism=1)
    )
    try:
        response = client.post("/api/auth/login/", json={"email": unique_email(), "password": PASSWORD})
    finally:
        app.state.components = parts
    assert response.status_code == 401
    assert len(counted) == 1


def test_a_deactivated_account_cannot_log_in(client, api):
    user = api.register()
    _, admin_tokens = api.admin()
    client.delete(f"/api/users/{user['id']}/", headers=bearer(admin_tokens))
    response = client.post("/api/auth/login/", json={"email": user["email"], "password": PASSWORD})
    assert_problem(response, 401, "invalid_credentials")


def test_a_hash_of_older_parameters_is_upgraded_at_login(client, api, app):
    user = api.register()
    db = app.state.db
    weaker = Passwords(time_cost=1, memory_cost=16, parallelism=2).hash(PASSWORD)
    with db.transaction() as session:
        session.get(User, user["id"]).password_hash = weaker
    api.login(user["email"])
    with db.sessions() as session:
        upgraded = session.scalar(select(User.password_hash).where(User.id == user["id"]))
    assert upgraded != weaker and "p=1" in upgraded


def test_login_fields_are_required(client):
    body = assert_problem(client.post("/api/auth/login/", json={"email": "a@example.com"}), 422)
    assert body["errors"] == [{"field": "password", "message": "Field required"}]


def _log_in_while(client, app, make_settings, email: str, act):
    """Log in to ``email`` with ``PASSWORD`` while ``act()`` (another request) runs once, right
    after the login's password check (outside its transaction) and before it stores its session;
    the login's answer and ``act()``'s."""
    done, started = [], threading.Event()

    class Interleaving(Passwords):
        def verify(self, password_hash, password):
            matches = super().verify(password_hash, password)
            if not started.is_set():  # the other request's own checks come here too
                started.set()
                done.append(act())
            return matches

    parts = app.state.components
    app.state.components = dataclasses.replace(parts, passwords=Interleaving.from_settings(make_settings()))
    try:
        login = client.post("/api/auth/login/", json={"email": email, "password": PASSWORD})
    finally:
        app.state.components = parts
    return login, done[0]


def test_a_login_whose_password_is_changed_while_it_is_checked_is_refused(client, api, app, make_settings):
    # Whoever logs in with the old password at the moment the owner changes it must not keep a
    # session the change did not end.
    user, tokens = api.signed_in()
    new = {"current_password": PASSWORD, "password": "An0ther-Long-Passphrase"}
    old_login, changed = _log_in_while(
        client,
        app,
        make_settings,
        user["email"],
        lambda: client.patch("/api/auth/me/", json=new, headers=bearer(tokens)),
    )

    assert changed.status_code == 200, changed.text
    assert_problem(old_login, 401, "invalid_credentials")
    assert api.login(user["email"], new["password"])["access"]


def test_a_login_of_an_account_deactivated_while_it_is_checked_is_refused(client, api, app, make_settings):
    user = api.register()
    _, admin_tokens = api.admin()
    login, deactivated = _log_in_while(
        client,
        app,
        make_settings,
        user["email"],
        lambda: client.delete(f"/api/users/{user['id']}/", headers=bearer(admin_tokens)),
    )

    assert deactivated.status_code == 204, deactivated.text
    assert_problem(login, 401, "invalid_credentials")
