"""Who may call which doctor endpoint, and the 404s that never leak a hidden profile."""

import pytest

from doctor.domain import NO_POLICY

DOCTOR_ID = 41


@pytest.fixture(autouse=True)
def a_listed_doctor(client, add_doctor):
    add_doctor(DOCTOR_ID, "Gregory House", "Diagnostics")


ENDPOINTS = [
    ("GET", "/api/doctors/"),
    ("GET", f"/api/doctors/{DOCTOR_ID}/"),
    ("PATCH", f"/api/doctors/{DOCTOR_ID}/"),
    ("GET", "/api/doctors/me/"),
    ("PATCH", "/api/doctors/me/"),
]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_an_anonymous_caller_is_not_authenticated(client, method, path):
    response = client.request(method, path, json={})
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_a_forged_token_is_not_authenticated(client, method, path):
    response = client.request(method, path, json={}, headers={"Authorization": "Bearer not.a.token"})
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("role", "method", "path", "status"),
    [
        ("patient", "GET", "/api/doctors/", 200),
        ("admin", "GET", "/api/doctors/", 200),
        ("doctor", "GET", "/api/doctors/", 403),
        ("patient", "GET", f"/api/doctors/{DOCTOR_ID}/", 200),
        ("admin", "GET", f"/api/doctors/{DOCTOR_ID}/", 200),
        ("doctor", "GET", f"/api/doctors/{DOCTOR_ID}/", 403),
        ("admin", "PATCH", f"/api/doctors/{DOCTOR_ID}/", 200),
        ("patient", "PATCH", f"/api/doctors/{DOCTOR_ID}/", 403),
        ("doctor", "PATCH", f"/api/doctors/{DOCTOR_ID}/", 403),
        ("patient", "GET", "/api/doctors/me/", 403),
        ("admin", "GET", "/api/doctors/me/", 403),
        ("patient", "PATCH", "/api/doctors/me/", 403),
        ("admin", "PATCH", "/api/doctors/me/", 403),
    ],
)
def test_each_role_may_use_only_its_endpoints(client, callers, role, method, path, status):
    response = client.request(method, path, json={"bio": "Hello"}, headers=callers(role).headers)
    assert response.status_code == status
    if status == 403:
        assert response.headers["content-type"] == "application/problem+json"


def test_a_doctor_reads_their_own_profile(client, callers):
    response = client.get("/api/doctors/me/", headers=callers("doctor", DOCTOR_ID).headers)
    assert response.status_code == 200
    assert response.json() == {
        "id": DOCTOR_ID,
        "full_name": "Gregory House",
        "specialty": "Diagnostics",
        "bio": "",
        "years_of_experience": 0,
        "booking_policy": NO_POLICY,
    }


def test_the_own_profile_is_served_without_the_trailing_slash(client, callers):
    assert client.get("/api/doctors/me", headers=callers("doctor", DOCTOR_ID).headers).status_code == 200


def test_a_doctor_whose_registration_has_not_arrived_yet_is_told_so(client, callers):
    response = client.get("/api/doctors/me/", headers=callers("doctor", 999).headers)
    assert response.status_code == 404
    assert response.json()["code"] == "doctor_profile_not_ready"
    assert "does not exist yet" in response.json()["detail"]


def test_a_doctor_cannot_edit_a_profile_that_has_not_arrived_yet(client, callers):
    response = client.patch("/api/doctors/me/", json={"bio": "Hi"}, headers=callers("doctor", 999).headers)
    assert response.status_code == 404
    assert response.json()["code"] == "doctor_profile_not_ready"


def test_a_hidden_doctor_has_no_own_profile(client, callers, add_doctor):
    add_doctor(42, "Hidden Doctor", is_active=False)
    response = client.get("/api/doctors/me/", headers=callers("doctor", 42).headers)
    assert response.status_code == 404
    assert response.json()["code"] == "doctor_profile_inactive"


def test_an_unknown_doctor_is_not_found(client, callers):
    response = client.get("/api/doctors/12345/", headers=callers("patient").headers)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "doctor_not_found"


def test_a_hidden_doctor_is_not_found_like_an_unknown_one(client, callers, add_doctor):
    add_doctor(43, "Hidden Doctor", "Cardiology", is_active=False)
    assert client.get("/api/doctors/43/", headers=callers("admin").headers).status_code == 404
    assert (
        client.patch("/api/doctors/43/", json={"bio": "x"}, headers=callers("admin").headers).status_code
        == 404
    )


@pytest.mark.parametrize("doctor_id", ["abc", "0", "-1", "99999999999999999999999"])
def test_an_id_that_cannot_name_a_doctor_is_not_found(client, callers, doctor_id):
    response = client.get(f"/api/doctors/{doctor_id}/", headers=callers("patient").headers)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


def test_no_error_reveals_internals(client, callers):
    response = client.get("/api/doctors/99999999999999999999999/", headers=callers("patient").headers)
    body = response.text.lower()
    assert "select" not in body and "traceback" not in body and "127.0.0.1" not in body
