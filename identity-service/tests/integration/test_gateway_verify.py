import base64
import hashlib
import hmac
import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fastapi.testclient import TestClient
from jwt import PyJWK
from support import assert_problem, bearer

from chassis.auth import TokenVerifier
from identity.main import create_app


def b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def verify(client, token: str | None, **headers):
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return client.get("/internal/verify", headers=headers)


def test_the_jwks_publishes_the_key_that_signs_access_tokens(client, api):
    keys = client.get("/internal/jwks").json()["keys"]
    assert all(key["alg"] == "EdDSA" and key["use"] == "sig" and "d" not in key for key in keys)
    _, tokens = api.signed_in()
    lookup = {key["kid"]: PyJWK(key).key for key in keys}
    principal = TokenVerifier(lookup.__getitem__, issuer="clinic-identity", audience="clinic").principal(
        tokens["access"]
    )
    assert principal.role == "patient"


def test_a_valid_token_passes_with_the_user_id_and_role_in_headers(client, api):
    user, tokens = api.signed_in(role="doctor")
    # What Traefik sends: always GET, the client's headers (a JSON content type too), no body.
    response = verify(
        client,
        tokens["access"],
        **{
            "Content-Type": "application/json",
            "X-Forwarded-Method": "POST",
            "X-Forwarded-Uri": "/api/timeslots/",
        },
    )
    assert response.status_code == 200
    assert response.headers["x-user-id"] == str(user["id"])
    assert response.headers["x-user-role"] == "doctor"


def test_a_request_without_a_token_is_refused_with_a_bearer_challenge(client):
    response = verify(client, None)
    assert_problem(response, 401, "not_authenticated")
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "x-user-id" not in response.headers
    assert_problem(client.get("/internal/verify", headers={"Authorization": "Basic dXNlcjpwYXNz"}), 401)


def forged_claims(user_id: int) -> dict:
    now = int(time.time())
    return {
        "sub": str(user_id),
        "role": "admin",
        "typ": "access",
        "iss": "clinic-identity",
        "aud": "clinic",
        "iat": now,
        "exp": now + 600,
    }


def test_a_request_with_two_authorization_headers_is_refused_whatever_they_hold(client, api):
    # Components that read the first and the last of them would disagree about the caller.
    _, patient = api.signed_in()
    _, doctor = api.signed_in(role="doctor")
    for tokens in ((patient["access"], doctor["access"]), (patient["access"], patient["access"])):
        response = client.get(
            "/internal/verify", headers=[("Authorization", f"Bearer {token}") for token in tokens]
        )
        assert_problem(response, 401)
        assert response.headers["www-authenticate"] == 'Bearer error="invalid_request"'
        assert "x-user-id" not in response.headers


@pytest.mark.parametrize(
    "forgery", ["alg_none", "hs256_with_public_key", "foreign_key", "unknown_kid", "garbage"]
)
def test_forged_tokens_are_refused(client, app, api, forgery):
    user, _ = api.signed_in()
    ring = app.state.components.keys
    claims = forged_claims(user["id"])
    if forgery == "alg_none":
        token = f"{b64({'alg': 'none', 'typ': 'JWT', 'kid': ring.kid})}.{b64(claims)}."
    elif forgery == "hs256_with_public_key":
        # The classic confusion attack: HMAC keyed with the (public) verification key.
        public_pem = ring.signing_key.public_key().public_bytes(
            Encoding.PEM, PublicFormat.SubjectPublicKeyInfo
        )
        signing_input = f"{b64({'alg': 'HS256', 'typ': 'JWT', 'kid': ring.kid})}.{b64(claims)}"
        mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
        token = f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
    elif forgery == "foreign_key":
        token = jwt.encode(claims, Ed25519PrivateKey.generate(), algorithm="EdDSA", headers={"kid": ring.kid})
    elif forgery == "unknown_kid":
        token = jwt.encode(claims, Ed25519PrivateKey.generate(), algorithm="EdDSA", headers={"kid": "other"})
    else:
        token = "not-a-jwt"
    assert_problem(verify(client, token), 401)


def test_an_expired_token_is_refused(client, app, api):
    user, _ = api.signed_in()
    tokens = app.state.components.tokens
    expired = tokens.access_token(
        user_id=user["id"],
        role="patient",
        session_id=uuid.uuid4(),
        now=datetime.now(UTC) - timedelta(hours=2),
    )
    body = assert_problem(verify(client, expired), 401)
    assert "expired" in body["detail"]


def test_a_refresh_token_is_not_an_access_token(client, app, api):
    user, tokens = api.signed_in()
    assert_problem(verify(client, tokens["refresh"]), 401)
    ring = app.state.components.keys
    claims = {**forged_claims(user["id"]), "role": "patient", "typ": "refresh"}
    signed_refresh = jwt.encode(claims, ring.signing_key, algorithm="EdDSA", headers={"kid": ring.kid})
    assert "not an access token" in assert_problem(verify(client, signed_refresh), 401)["detail"]


def test_a_token_naming_a_role_the_user_no_longer_has_is_refused_at_once(client, api):
    user, tokens = api.signed_in()
    _, admin_tokens = api.admin()
    assert verify(client, tokens["access"]).headers["x-user-role"] == "patient"
    client.patch(f"/api/users/{user['id']}/", headers=bearer(admin_tokens), json={"role": "doctor"})
    assert "role has changed" in assert_problem(verify(client, tokens["access"]), 401)["detail"]
    # The session lives on: a refresh gives a token of the new role.
    refreshed = client.post("/api/auth/token/refresh/", json={"refresh": tokens["refresh"]})
    assert refreshed.status_code == 200
    assert verify(client, refreshed.json()["access"]).headers["x-user-role"] == "doctor"


def test_a_deactivated_users_token_is_refused_at_once(client, api):
    user, tokens = api.signed_in()
    _, admin_tokens = api.admin()
    assert verify(client, tokens["access"]).status_code == 200
    client.delete(f"/api/users/{user['id']}/", headers=bearer(admin_tokens))
    assert "deactivated" in assert_problem(verify(client, tokens["access"]), 401)["detail"]


def wait_until(condition, timeout: float = 5.0) -> float:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, "timed out"
        time.sleep(0.005)
    return time.monotonic() - started


def test_a_deactivation_on_one_replica_empties_the_cache_of_every_other_replica(make_settings, api, client):
    user, tokens = api.signed_in()
    _, admin_tokens = api.admin()
    other_app = create_app(make_settings())
    statuses = other_app.state.components.statuses
    with TestClient(other_app) as other:
        wait_until(lambda: statuses.trusted)
        assert verify(other, tokens["access"]).status_code == 200
        assert statuses.is_cached(user["id"])

        client.delete(f"/api/users/{user['id']}/", headers=bearer(admin_tokens))

        assert wait_until(lambda: not statuses.is_cached(user["id"])) < 1.0
        assert_problem(verify(other, tokens["access"]), 401)


def test_without_the_listener_every_check_reads_the_database(make_settings, api, client):
    user, tokens = api.signed_in()
    _, admin_tokens = api.admin()
    uncached_app = create_app(make_settings(user_status_cache_enabled=False))
    with TestClient(uncached_app) as uncached:
        assert verify(uncached, tokens["access"]).status_code == 200
        assert not uncached_app.state.components.statuses.is_cached(user["id"])
        client.delete(f"/api/users/{user['id']}/", headers=bearer(admin_tokens))
        assert_problem(verify(uncached, tokens["access"]), 401)


def test_internal_endpoints_are_not_in_the_public_openapi_document(client):
    paths = client.get("/api/schema/identity/openapi.json").json()["paths"]
    assert not [path for path in paths if path.startswith("/internal")]
    assert {"/api/auth/register/", "/api/auth/login/", "/api/users/", "/api/users/{user_id}/"} <= set(paths)
