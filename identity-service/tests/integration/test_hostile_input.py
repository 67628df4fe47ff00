"""Hostile input found by the robustness suite's fuzzer: each a clear 4xx, never a 500."""

import uuid

import pytest
from support import PASSWORD, assert_problem, bearer


@pytest.fixture(scope="module")
def admin(api):
    return api.admin()


@pytest.mark.parametrize("is_active", [0, 1, "false", "true", "0"])
def test_an_admin_update_takes_json_types_as_they_are(client, api, admin, is_active):
    # Pydantic's lax mode used to read 0 / "false" as False: a schema-violating body accepted.
    user = api.register()
    response = client.patch(
        f"/api/users/{user['id']}/", json={"is_active": is_active}, headers=bearer(admin[1])
    )
    assert_problem(response, 422)
    assert client.get(f"/api/users/{user['id']}/", headers=bearer(admin[1])).json()["is_active"] is True


def test_registration_takes_json_types_as_they_are(client):
    body = {"email": f"t-{uuid.uuid4().hex[:8]}@clinic.example.com", "password": PASSWORD, "full_name": 42}
    assert_problem(client.post("/api/auth/register/", json=body), 422)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/auth/login/", {"email": "a\u0000@clinic.example.com", "password": PASSWORD}),
    ],
)
def test_a_nul_character_is_a_422_not_a_database_error(client, path, body):
    body = {"email": f"n-{uuid.uuid4().hex[:8]}@clinic.example.com", **body}
    response = client.post(path, json=body)
    assert_problem(response, 422)
    assert response.json()["code"] == "unstorable_value"


def test_a_nul_character_in_a_search_is_a_422(client, admin):
    assert_problem(client.get("/api/users/", params={"search": "a\u0000b"}, headers=bearer(admin[1])), 422)


@pytest.mark.parametrize(
    "name", ["a\u0000b", "Ada\nLovelace", "Ada\rLovelace", "Ada\u000bL", "Ada\u0085L", "Ada\u2028L"]
)
def test_a_name_with_control_characters_or_line_breaks_is_a_422_naming_the_field(client, name):
    body = {"email": f"c-{uuid.uuid4().hex[:8]}@clinic.example.com", "password": PASSWORD, "full_name": name}
    problem = assert_problem(client.post("/api/auth/register/", json=body), 422)
    assert [e["field"] for e in problem["errors"]] == ["full_name"]
