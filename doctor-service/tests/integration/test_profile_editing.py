"""PATCH /api/doctors/me/ (the doctor) and PATCH /api/doctors/{id}/ (an admin)."""

import pytest

from doctor.domain import NO_POLICY

DOCTOR_ID = 51


@pytest.fixture(autouse=True)
def a_new_doctor(client, add_doctor):
    add_doctor(DOCTOR_ID, "Miranda Bailey")


def test_a_doctor_fills_in_their_profile(client, callers):
    body = {"specialty": "General Surgery", "bio": "Chief of surgery.", "years_of_experience": 15}
    response = client.patch("/api/doctors/me/", json=body, headers=callers("doctor", DOCTOR_ID).headers)
    assert response.status_code == 200
    assert response.json() == {
        "id": DOCTOR_ID,
        "full_name": "Miranda Bailey",
        **body,
        "booking_policy": NO_POLICY,
    }
    assert (
        client.get(f"/api/doctors/{DOCTOR_ID}/", headers=callers("patient").headers).json() == response.json()
    )


def test_a_partial_edit_leaves_the_other_fields_alone(client, callers):
    client.patch(
        "/api/doctors/me/",
        json={"specialty": "Surgery", "bio": "Bio"},
        headers=callers("doctor", DOCTOR_ID).headers,
    )
    response = client.patch(
        "/api/doctors/me/", json={"years_of_experience": 3}, headers=callers("doctor", DOCTOR_ID).headers
    )
    assert response.json()["specialty"] == "Surgery"
    assert response.json()["bio"] == "Bio"
    assert response.json()["years_of_experience"] == 3


def test_an_admin_edits_a_doctors_profile(client, callers):
    response = client.patch(
        f"/api/doctors/{DOCTOR_ID}/", json={"specialty": "Pediatrics"}, headers=callers("admin").headers
    )
    assert response.status_code == 200
    assert response.json()["specialty"] == "Pediatrics"
    assert (
        client.get("/api/doctors/me/", headers=callers("doctor", DOCTOR_ID).headers).json()["specialty"]
        == "Pediatrics"
    )


def test_an_empty_edit_changes_nothing(client, callers):
    response = client.patch("/api/doctors/me/", json={}, headers=callers("doctor", DOCTOR_ID).headers)
    assert response.status_code == 200
    assert response.json()["specialty"] == ""


def test_the_bio_may_be_cleared(client, callers):
    client.patch("/api/doctors/me/", json={"bio": "Something"}, headers=callers("doctor", DOCTOR_ID).headers)
    response = client.patch(
        "/api/doctors/me/", json={"bio": ""}, headers=callers("doctor", DOCTOR_ID).headers
    )
    assert response.json()["bio"] == ""


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"years_of_experience": -1}, "years_of_experience"),
        ({"years_of_experience": 81}, "years_of_experience"),
        ({"years_of_experience": "ten"}, "years_of_experience"),
        ({"years_of_experience": 2.5}, "years_of_experience"),
        ({"specialty": ""}, "specialty"),
        ({"specialty": "x" * 101}, "specialty"),
        ({"specialty": 42}, "specialty"),
        ({"specialty": None}, "specialty"),
        ({"bio": "x" * 2001}, "bio"),
        ({"full_name": "Not Editable Here"}, "full_name"),
    ],
)
@pytest.mark.parametrize("who", ["doctor", "admin"])
def test_an_invalid_edit_is_refused_field_by_field(client, callers, body, field, who):
    if who == "doctor":
        response = client.patch("/api/doctors/me/", json=body, headers=callers("doctor", DOCTOR_ID).headers)
    else:
        response = client.patch(f"/api/doctors/{DOCTOR_ID}/", json=body, headers=callers("admin").headers)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 422
    assert [error["field"] for error in problem["errors"]] == [field]
    assert (
        client.get("/api/doctors/me/", headers=callers("doctor", DOCTOR_ID).headers).json()["specialty"] == ""
    )


def test_a_body_that_is_not_an_object_is_a_validation_error(client, callers):
    response = client.patch("/api/doctors/me/", json=["bio"], headers=callers("doctor", DOCTOR_ID).headers)
    assert response.status_code == 422


def test_a_body_that_is_not_json_is_a_bad_request(client, callers):
    headers = {**callers("doctor", DOCTOR_ID).headers, "Content-Type": "application/json"}
    response = client.patch("/api/doctors/me/", content=b"{not json", headers=headers)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
