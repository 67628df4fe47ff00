"""Service tokens: OAuth 2.0 client credentials at identity, for service-to-service calls only."""

from __future__ import annotations

import httpx
import pytest
from support import SERVICE_SECRETS, assert_problem

from chassis.auth import InvalidToken
from chassis.service_auth import ServiceTokenVerifier


def ask(client, client_id: str, secret: str, **form: str):
    body = {"grant_type": "client_credentials", "audience": "scheduling", **form}
    return client.post("/internal/service-tokens", json=body, auth=httpx.BasicAuth(client_id, secret))


def verifier_for(app, service: str) -> ServiceTokenVerifier:
    return ServiceTokenVerifier(app.state.components.keys, issuer="clinic-identity", service=service)


def test_a_service_with_its_secret_gets_a_short_lived_token_for_the_service_it_calls(client, app):
    response = ask(client, "booking", SERVICE_SECRETS["booking"])
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 300
    assert response.headers["cache-control"] == "no-store"
    assert verifier_for(app, "scheduling").caller(body["access_token"]) == "booking"
    # Meant for scheduling only.
    with pytest.raises(InvalidToken):
        verifier_for(app, "booking").caller(body["access_token"])


@pytest.mark.parametrize(
    ("client_id", "secret"),
    [
        ("booking", "not the secret"),
        ("booking", SERVICE_SECRETS["scheduling"]),
        ("intruder", SERVICE_SECRETS["booking"]),
        ("booking", ""),
    ],
)
def test_a_wrong_secret_or_an_unknown_service_gets_no_token(client, client_id, secret):
    assert_problem(ask(client, client_id, secret), 401, "invalid_client")


def test_a_request_without_client_credentials_gets_no_token(client, api):
    _, tokens = api.signed_in()
    form = {"grant_type": "client_credentials", "audience": "scheduling"}
    assert_problem(client.post("/internal/service-tokens", json=form), 401, "invalid_client")
    # A user's access token is no client credential.
    user_bearer = {"Authorization": f"Bearer {tokens['access']}"}
    assert_problem(client.post("/internal/service-tokens", json=form, headers=user_bearer), 401)


@pytest.mark.parametrize(
    "form", [{"grant_type": "password"}, {"audience": ""}, {"audience": "Not A Service"}]
)
def test_a_malformed_token_request_is_422(client, form):
    assert_problem(ask(client, "booking", SERVICE_SECRETS["booking"], **form), 422)


def test_a_service_token_is_no_users_access_token(client):
    token = ask(client, "booking", SERVICE_SECRETS["booking"]).json()["access_token"]
    for path in ("/internal/verify", "/api/auth/me/"):
        assert_problem(client.get(path, headers={"Authorization": f"Bearer {token}"}), 401)
