"""Authentication and user administration through the gateway (spec/API.md, Authentication and Users)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from datetime import datetime

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .api import PASSWORD, TOKEN_FIELDS, USER_FIELDS, User, login, new_user, problem, register, unique_email

# A protected route of identity itself and one that only the gateway's ForwardAuth guards first.
GUARDED_PATHS = ("/api/auth/me/", "/api/doctors/")


@pytest.fixture
def admin_token(stack, admin) -> str:
    with stack.client() as client:
        return login(client, admin.email, admin.password)["access"]


def login_attempt(client, email: str, password: str):
    return client.post("/api/auth/login/", json={"email": email, "password": password})


def refreshed(stack, refresh: str):
    with stack.client() as client:
        return client.post("/api/auth/token/refresh/", json={"refresh": refresh})


def me(stack, token: str):
    with stack.client(token) as client:
        return client.get("/api/auth/me/")


def assert_refused(stack, token: str) -> None:
    for path in GUARDED_PATHS:
        with stack.client(token) as client:
            problem(client.get(path), 401)


# -- registration -----------------------------------------------------------------------------


def test_registering_creates_an_active_patient_by_default(stack):
    email = unique_email("new")
    with stack.client() as client:
        response = client.post(
            "/api/auth/register/",
            json={"email": email, "password": PASSWORD, "full_name": "Nina New", "phone": "+15550001"},
        )
    assert response.status_code == 201, response.text
    user = response.json()
    assert set(user) == USER_FIELDS
    assert user["email"] == email
    assert user["full_name"] == "Nina New"
    assert user["phone"] == "+15550001"
    assert user["role"] == "patient"
    assert user["is_active"] is True
    assert isinstance(user["id"], int) and user["id"] > 0
    assert datetime.fromisoformat(user["date_joined"]).utcoffset() is not None


def test_a_doctor_can_register_as_a_doctor(stack):
    with stack.client() as client:
        assert register(client, role="doctor")["role"] == "doctor"


def test_public_registration_never_creates_an_admin(stack):
    with stack.client() as client:
        response = client.post(
            "/api/auth/register/",
            json={
                "email": unique_email(),
                "password": PASSWORD,
                "full_name": "Ivy Intruder",
                "role": "admin",
            },
        )
    body = problem(response, 422)
    assert "role" in [error["field"] for error in body["errors"]]


def test_emails_are_unique_regardless_of_case_and_stored_lower_cased(stack):
    email = unique_email("Mixed.Case").replace("clinic.example.com", "Clinic.Example.COM")
    with stack.client() as client:
        user = register(client, email=email)
        duplicate = client.post(
            "/api/auth/register/", json={"email": email.upper(), "password": PASSWORD, "full_name": "Twin"}
        )
    assert user["email"] == email.lower()
    problem(duplicate, 409)


@pytest.mark.parametrize(
    ("password", "why"),
    [("Sh0rt!", "shorter than 8 characters"), ("1234567890", "entirely numeric"), (None, "the email itself")],
)
def test_weak_passwords_are_refused(stack, password, why):
    email = unique_email("weak")
    with stack.client() as client:
        response = client.post(
            "/api/auth/register/",
            json={"email": email, "password": password or email, "full_name": "Wes Weak"},
        )
    body = problem(response, 422)
    assert "password" in [error["field"] for error in body["errors"]], why


def test_missing_fields_are_each_reported(stack):
    with stack.client() as client:
        body = problem(client.post("/api/auth/register/", json={}), 422)
    assert {"email", "password", "full_name"} <= {error["field"] for error in body["errors"]}
    assert all(error["message"] for error in body["errors"])


def test_a_body_that_is_not_json_gets_400(stack):
    with stack.client() as client:
        response = client.post(
            "/api/auth/register/", content=b'{"email": ', headers={"Content-Type": "application/json"}
        )
    problem(response, 400)


# -- login ------------------------------------------------------------------------------------


def test_login_returns_an_access_and_a_refresh_token(stack):
    with stack.client() as client:
        user = register(client)
        tokens = login(client, user["email"], PASSWORD)
    assert set(tokens) == TOKEN_FIELDS
    assert tokens["token_type"] == "Bearer"
    assert isinstance(tokens["expires_in"], int) and tokens["expires_in"] > 0
    assert me(stack, tokens["access"]).json()["id"] == user["id"]


def test_login_ignores_the_case_of_the_email(stack):
    with stack.client() as client:
        user = register(client)
        login(client, user["email"].upper(), PASSWORD)


def test_wrong_credentials_get_401(stack):
    with stack.client() as client:
        user = register(client)
        problem(login_attempt(client, user["email"], "Not-The-One-1"), 401)
        problem(login_attempt(client, unique_email("ghost"), PASSWORD), 401)


# -- me ---------------------------------------------------------------------------------------


def test_me_returns_the_callers_own_user(stack, doctor):
    response = me(stack, doctor.access)
    assert response.status_code == 200
    user = response.json()
    assert set(user) == USER_FIELDS
    assert (user["id"], user["email"], user["role"]) == (doctor.id, doctor.email, "doctor")


def test_me_updates_name_and_phone_but_never_the_role(stack, patient):
    with stack.client(patient.access) as client:
        updated = client.patch("/api/auth/me/", json={"full_name": "Pat Renamed", "phone": "+15550002"})
        escalation = client.patch("/api/auth/me/", json={"role": "admin"})
    assert updated.status_code == 200, updated.text
    assert (updated.json()["full_name"], updated.json()["phone"]) == ("Pat Renamed", "+15550002")
    assert escalation.status_code in (200, 422)
    assert me(stack, patient.access).json()["role"] == "patient"


def test_changing_the_password_requires_the_current_one(stack, patient):
    new_password = "Green-Heron-77"
    with stack.client(patient.access) as client:
        problem(client.patch("/api/auth/me/", json={"password": new_password}), 422)
        wrong = client.patch(
            "/api/auth/me/", json={"password": new_password, "current_password": "Not-The-One-1"}
        )
        assert wrong.status_code >= 400
        changed = client.patch(
            "/api/auth/me/", json={"password": new_password, "current_password": patient.password}
        )
        assert changed.status_code == 200, changed.text
        assert "password" not in changed.json()
    with stack.client() as client:
        problem(login_attempt(client, patient.email, patient.password), 401)
        login(client, patient.email, new_password)


# -- refresh and logout -------------------------------------------------------------------------


def test_refresh_rotates_the_refresh_token(stack, patient):
    response = refreshed(stack, patient.refresh)
    assert response.status_code == 200, response.text
    tokens = response.json()
    assert set(tokens) == TOKEN_FIELDS
    assert tokens["refresh"] != patient.refresh
    assert me(stack, tokens["access"]).json()["id"] == patient.id


def test_a_reused_refresh_token_is_refused_and_revokes_its_whole_chain(stack, patient):
    second = refreshed(stack, patient.refresh).json()["refresh"]
    third = refreshed(stack, second).json()["refresh"]
    # Presented again after its successor was used: reuse, whatever the grace period.
    assert problem(refreshed(stack, patient.refresh), 401)["code"] == "refresh_token_reused"
    problem(refreshed(stack, third), 401)


def test_two_refreshes_with_one_token_at_once_get_the_same_successor(stack, patient):
    first = refreshed(stack, patient.refresh)
    again = refreshed(stack, patient.refresh)  # a second tab, within REFRESH_REUSE_GRACE_SECONDS
    assert first.status_code == again.status_code == 200, again.text
    assert first.json()["refresh"] == again.json()["refresh"]
    assert refreshed(stack, again.json()["refresh"]).status_code == 200


def test_refresh_refuses_anything_but_a_live_refresh_token(stack, patient):
    for not_a_refresh_token in ("garbage", patient.access, ""):
        assert refreshed(stack, not_a_refresh_token).status_code in (401, 422)
    problem(refreshed(stack, "garbage"), 401)
    problem(refreshed(stack, patient.access), 401)


def test_a_refresh_token_is_not_an_access_token(stack, patient):
    assert_refused(stack, patient.refresh)


def test_logout_revokes_the_refresh_token_and_its_rotations(stack, patient):
    rotated = refreshed(stack, patient.refresh).json()
    with stack.client(rotated["access"]) as client:
        response = client.post("/api/auth/logout/", json={"refresh": rotated["refresh"]})
    assert response.status_code == 204
    assert response.content == b""
    problem(refreshed(stack, rotated["refresh"]), 401)

    with stack.client() as client:
        tokens = login(client, patient.email, patient.password)
    with stack.client(tokens["access"]) as client:
        assert client.post("/api/auth/logout/", json={"refresh": tokens["refresh"]}).status_code == 204
    problem(refreshed(stack, tokens["refresh"]), 401)


def test_logout_needs_an_access_token(stack, patient):
    with stack.client() as client:
        problem(client.post("/api/auth/logout/", json={"refresh": patient.refresh}), 401)
    assert refreshed(stack, patient.refresh).status_code == 200


# -- users (admin) ----------------------------------------------------------------------------


def test_the_bootstrap_admin_can_log_in(stack, admin_token):
    user = me(stack, admin_token).json()
    assert user["role"] == "admin"
    assert user["email"] == stack.admin.email


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/users/", None),
        ("GET", "/api/users/{id}/", None),
        ("PATCH", "/api/users/{id}/", {"full_name": "Changed By Someone"}),
        ("DELETE", "/api/users/{id}/", None),
    ],
)
def test_only_admins_manage_users(stack, patient, doctor, admin_token, method, path, body):
    target = new_user(stack, "patient")
    url = path.format(id=target.id)
    kwargs = {"json": body} if body is not None else {}
    with stack.client() as anonymous:
        problem(anonymous.request(method, url, **kwargs), 401)
    for caller in (patient, doctor):
        with stack.client(caller.access) as client:
            problem(client.request(method, url, **kwargs), 403)
    with stack.client(admin_token) as client:
        response = client.request(method, url, **kwargs)
    assert response.status_code == (204 if method == "DELETE" else 200), response.text


def test_admin_lists_users_by_role_search_and_activity(stack, admin_token):
    tag = uuid.uuid4().hex[:10]
    patient = new_user(stack, "patient", full_name=f"Polly {tag}")
    doctor = new_user(stack, "doctor", full_name=f"Dan {tag}")
    gone = new_user(stack, "patient", full_name=f"Gina {tag}")
    with stack.client(admin_token) as client:
        assert client.delete(f"/api/users/{gone.id}/").status_code == 204

        def ids(**params) -> set[int]:
            response = client.get("/api/users/", params={"search": tag, **params})
            assert response.status_code == 200, response.text
            page = response.json()
            assert set(page) == {"count", "next", "previous", "results"}
            assert page["count"] == len(page["results"])
            assert all(set(user) == USER_FIELDS for user in page["results"])
            return {user["id"] for user in page["results"]}

        assert ids() == {patient.id, doctor.id, gone.id}
        assert ids(role="doctor") == {doctor.id}
        assert ids(is_active="false") == {gone.id}
        assert ids(is_active="true", role="patient") == {patient.id}
        assert ids(search=patient.email) == {patient.id}


def test_admin_lists_users_a_page_at_a_time(stack, admin_token):
    tag = uuid.uuid4().hex[:10]
    for n in range(3):
        new_user(stack, "patient", full_name=f"Page{n} {tag}")
    with stack.client(admin_token) as client:
        first = client.get("/api/users/", params={"search": tag, "page_size": 2}).json()
        assert (first["count"], len(first["results"]), first["previous"]) == (3, 2, None)
        assert first["next"].startswith(stack.base_url + "/api/users/")
        second = client.get(first["next"]).json()
    assert len(second["results"]) == 1
    assert second["next"] is None
    assert second["previous"].startswith(stack.base_url + "/api/users/")


def test_admin_reads_and_updates_a_user(stack, admin_token, patient):
    with stack.client(admin_token) as client:
        read = client.get(f"/api/users/{patient.id}/")
        updated = client.patch(
            f"/api/users/{patient.id}/",
            json={"full_name": "Pat Promoted", "phone": "+15550003", "role": "doctor"},
        )
        missing = client.get("/api/users/999999999/")
    assert read.status_code == 200
    assert set(read.json()) == USER_FIELDS
    assert updated.status_code == 200, updated.text
    assert (updated.json()["full_name"], updated.json()["role"]) == ("Pat Promoted", "doctor")
    problem(missing, 404)
    with stack.client() as client:
        tokens = login(client, patient.email, patient.password)
    assert me(stack, tokens["access"]).json()["role"] == "doctor"


def test_an_admin_cannot_delete_itself(stack, admin_token):
    admin_id = me(stack, admin_token).json()["id"]
    with stack.client(admin_token) as client:
        problem(client.delete(f"/api/users/{admin_id}/"), 409)
        problem(client.delete("/api/users/999999999/"), 404)
    assert me(stack, admin_token).status_code == 200


def test_a_deleted_user_is_shut_out_at_once_but_kept(stack, admin_token, patient):
    assert me(stack, patient.access).status_code == 200
    with stack.client(admin_token) as client:
        assert client.delete(f"/api/users/{patient.id}/").status_code == 204
        kept = client.get(f"/api/users/{patient.id}/")
    assert kept.status_code == 200
    assert kept.json()["is_active"] is False
    assert_refused(stack, patient.access)
    problem(refreshed(stack, patient.refresh), 401)
    with stack.client() as client:
        problem(login_attempt(client, patient.email, patient.password), 401)


def test_a_deactivated_user_is_shut_out_at_once_and_back_when_reactivated(stack, admin_token, doctor):
    with stack.client(admin_token) as client:
        assert client.patch(f"/api/users/{doctor.id}/", json={"is_active": False}).status_code == 200
    assert_refused(stack, doctor.access)
    with stack.client(admin_token) as client:
        assert client.patch(f"/api/users/{doctor.id}/", json={"is_active": True}).status_code == 200
    with stack.client() as client:
        tokens = login(client, doctor.email, doctor.password)
    assert me(stack, tokens["access"]).status_code == 200


# -- forged tokens ----------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims_and_kid(user: User) -> tuple[dict, str]:
    claims = jwt.decode(user.access, options={"verify_signature": False})
    return claims, jwt.get_unverified_header(user.access)["kid"]


def _identity_signing_key(stack) -> Ed25519PrivateKey:
    """Identity's own private key, from the file this stack gave it (test set-up only)."""
    key = serialization.load_pem_private_key(stack.jwt_private_key_file.read_bytes(), password=None)
    assert isinstance(key, Ed25519PrivateKey)
    return key


def test_a_token_re_signed_with_identitys_own_key_is_accepted(stack, patient):
    """The control for the tests below: re-signing a token's claims changes nothing by itself."""
    claims, kid = _claims_and_kid(patient)
    token = jwt.encode(claims, _identity_signing_key(stack), algorithm="EdDSA", headers={"kid": kid})
    assert me(stack, token).json()["id"] == patient.id


def test_an_expired_token_is_refused(stack, patient):
    claims, kid = _claims_and_kid(patient)
    now = int(time.time())
    claims.update(iat=now - 3600, exp=now - 60)
    if "nbf" in claims:
        claims["nbf"] = now - 3600
    assert_refused(
        stack, jwt.encode(claims, _identity_signing_key(stack), algorithm="EdDSA", headers={"kid": kid})
    )


def test_a_token_signed_with_another_key_is_refused(stack, patient):
    claims, kid = _claims_and_kid(patient)
    assert_refused(
        stack, jwt.encode(claims, Ed25519PrivateKey.generate(), algorithm="EdDSA", headers={"kid": kid})
    )


def test_a_tampered_token_is_refused(stack, patient):
    header, payload, signature = patient.access.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["role"] = "admin"
    assert_refused(stack, f"{header}.{_b64(json.dumps(claims).encode())}.{signature}")


def test_an_unsigned_alg_none_token_is_refused(stack, patient):
    claims, kid = _claims_and_kid(patient)
    for alg in ("none", "None", "NONE"):
        header = _b64(json.dumps({"alg": alg, "typ": "JWT", "kid": kid}).encode())
        payload = _b64(json.dumps(claims).encode())
        assert_refused(stack, f"{header}.{payload}.")


def test_an_hs256_token_keyed_with_identitys_public_key_is_refused(stack, patient):
    claims, kid = _claims_and_kid(patient)
    public_key = _identity_signing_key(stack).public_key()
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    pem = public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    for secret in (pem, raw, _b64(raw).encode()):
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
        payload = _b64(json.dumps(claims).encode())
        signature = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        assert_refused(stack, f"{header}.{payload}.{_b64(signature)}")
