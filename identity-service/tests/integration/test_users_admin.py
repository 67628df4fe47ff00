import uuid

import pytest
from support import PASSWORD, assert_problem, bearer


@pytest.fixture(scope="module")
def admin(api):
    return api.admin()


def admin_headers(admin):
    return bearer(admin[1])


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/users/"),
        ("GET", "/api/users/1/"),
        ("PATCH", "/api/users/1/"),
        ("DELETE", "/api/users/1/"),
    ],
)
def test_user_management_is_for_admins_only(client, api, method, path):
    assert_problem(client.request(method, path, json={}), 401)
    for role in ("patient", "doctor"):
        _, tokens = api.signed_in(role=role)
        assert_problem(client.request(method, path, headers=bearer(tokens), json={}), 403, "forbidden")


def test_the_user_list_is_paginated_in_id_order(client, api, admin):
    marker = uuid.uuid4().hex[:10]
    ids = [api.register(full_name=f"Paged {marker} {n}")["id"] for n in range(5)]
    first = client.get(f"/api/users/?search={marker}&page_size=2", headers=admin_headers(admin)).json()
    assert first["count"] == 5 and first["previous"] is None
    assert [user["id"] for user in first["results"]] == ids[:2]
    second = client.get(first["next"], headers=admin_headers(admin)).json()
    assert [user["id"] for user in second["results"]] == ids[2:4]
    assert second["previous"].startswith("http://testserver/api/users/")
    last = client.get(second["next"], headers=admin_headers(admin)).json()
    assert [user["id"] for user in last["results"]] == ids[4:] and last["next"] is None


def test_users_can_be_filtered_by_role_activity_and_a_search_on_email_or_name(client, api, admin):
    marker = uuid.uuid4().hex[:10]
    doctor = api.register(full_name=f"Dr {marker.upper()} Who", role="doctor")
    patient = api.register(email=f"{marker}@example.com", full_name="Plain Patient")
    gone = api.register(full_name=f"Gone {marker}")
    client.delete(f"/api/users/{gone['id']}/", headers=admin_headers(admin))

    def ids(query):
        response = client.get(f"/api/users/?search={marker}&{query}", headers=admin_headers(admin))
        assert response.status_code == 200, response.text
        return [user["id"] for user in response.json()["results"]]

    assert ids("") == [doctor["id"], patient["id"], gone["id"]]
    assert ids("role=doctor") == [doctor["id"]]
    assert ids("is_active=false") == [gone["id"]]
    assert ids("is_active=true&role=patient") == [patient["id"]]
    wildcard = client.get("/api/users/?search=%25_%25", headers=admin_headers(admin)).json()
    assert wildcard["count"] == 0  # LIKE wildcards in a search are taken literally


def test_invalid_list_filters_are_refused(client, admin):
    for query in ("role=superuser", "is_active=maybe", "page=0", "page_size=101"):
        assert_problem(client.get(f"/api/users/?{query}", headers=admin_headers(admin)), 422)


def test_an_admin_reads_any_user_and_gets_404_for_an_unknown_one(client, api, admin):
    user = api.register()
    assert client.get(f"/api/users/{user['id']}/", headers=admin_headers(admin)).json() == user
    assert_problem(client.get("/api/users/999999999/", headers=admin_headers(admin)), 404, "user_not_found")
    assert_problem(client.get("/api/users/abc/", headers=admin_headers(admin)), 422)


def test_an_admin_changes_name_phone_and_role(client, api, admin):
    user = api.register(phone="+1 555 0100")
    response = client.patch(
        f"/api/users/{user['id']}/",
        headers=admin_headers(admin),
        json={"full_name": "Dr Renamed", "phone": None, "role": "doctor"},
    )
    assert response.status_code == 200
    changed = response.json()
    assert (changed["full_name"], changed["phone"], changed["role"]) == ("Dr Renamed", None, "doctor")
    assert_problem(client.patch("/api/users/999999999/", headers=admin_headers(admin), json={}), 404)
    assert_problem(
        client.patch(f"/api/users/{user['id']}/", headers=admin_headers(admin), json={"role": None}), 422
    )


def test_deactivating_through_patch_works_like_delete_and_can_be_undone(client, api, admin):
    user, tokens = api.signed_in()
    response = client.patch(
        f"/api/users/{user['id']}/", headers=admin_headers(admin), json={"is_active": False}
    )
    assert response.status_code == 200 and response.json()["is_active"] is False
    assert_problem(api.verify(tokens), 401)
    assert client.post("/api/auth/token/refresh/", json={"refresh": tokens["refresh"]}).status_code == 401
    assert (
        client.post("/api/auth/login/", json={"email": user["email"], "password": PASSWORD}).status_code
        == 401
    )

    client.patch(f"/api/users/{user['id']}/", headers=admin_headers(admin), json={"is_active": True})
    assert api.verify(api.login(user["email"])).status_code == 200


def test_deleting_a_user_deactivates_it_and_keeps_the_record(client, api, admin):
    user, tokens = api.signed_in(role="doctor")
    assert client.delete(f"/api/users/{user['id']}/", headers=admin_headers(admin)).status_code == 204
    kept = client.get(f"/api/users/{user['id']}/", headers=admin_headers(admin)).json()
    assert kept["is_active"] is False and kept["email"] == user["email"]
    assert_problem(api.verify(tokens), 401)
    assert client.delete(f"/api/users/{user['id']}/", headers=admin_headers(admin)).status_code == 204
    assert_problem(client.delete("/api/users/999999999/", headers=admin_headers(admin)), 404)


@pytest.mark.parametrize(
    ("method", "body"), [("DELETE", None), ("PATCH", {"is_active": False}), ("PATCH", {"role": "doctor"})]
)
def test_an_admin_cannot_delete_deactivate_or_demote_itself(client, api, method, body):
    me, tokens = api.admin()
    response = client.request(method, f"/api/users/{me['id']}/", headers=bearer(tokens), json=body)
    assert_problem(response, 409, "admin_lockout")
    assert api.verify(tokens).headers["x-user-role"] == "admin"


def test_an_admin_may_demote_another_admin_who_then_loses_access_at_once(client, api, admin):
    other, other_tokens = api.admin()
    client.patch(f"/api/users/{other['id']}/", headers=admin_headers(admin), json={"role": "patient"})
    # The admin token is refused outright; a new login has the patient's role, and no admin powers.
    assert_problem(client.get("/api/users/", headers=bearer(other_tokens)), 401)
    patient_tokens = client.post("/api/auth/token/refresh/", json={"refresh": other_tokens["refresh"]}).json()
    assert_problem(client.get("/api/users/", headers=bearer(patient_tokens)), 403)


def test_tokens_from_before_a_demotion_stay_refused_once_the_admin_is_promoted_back(client, api, admin):
    other, other_tokens = api.admin()
    assert client.get("/api/users/", headers=bearer(other_tokens)).status_code == 200  # now cached
    path = f"/api/users/{other['id']}/"
    assert client.patch(path, headers=admin_headers(admin), json={"role": "patient"}).status_code == 200
    patient_tokens = client.post("/api/auth/token/refresh/", json={"refresh": other_tokens["refresh"]}).json()
    assert client.patch(path, headers=admin_headers(admin), json={"role": "admin"}).status_code == 200
    # The first token names "admin" again, yet it was issued before the role changed: refused on
    # identity's own endpoints and at the gateway's check, like the patient token of the meantime.
    for tokens in (other_tokens, patient_tokens):
        assert_problem(client.get("/api/users/", headers=bearer(tokens)), 401)
        assert "role has changed" in assert_problem(api.verify(tokens), 401)["detail"]
    # The session lives on: a refresh gives a token of the role now, which works at once.
    refreshed = client.post("/api/auth/token/refresh/", json={"refresh": patient_tokens["refresh"]})
    assert refreshed.status_code == 200, refreshed.text
    assert client.get("/api/users/", headers=bearer(refreshed.json())).status_code == 200
    assert api.verify(refreshed.json()).headers["x-user-role"] == "admin"
    assert api.verify(api.login(other["email"])).headers["x-user-role"] == "admin"
