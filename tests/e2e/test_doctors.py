"""Doctors through the gateway: profiles follow identity's users by event, search, roles (spec/API.md)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from .api import User, login, new_user, problem
from .stack import Credentials, Stack, wait_until

# A profile appears (or changes) once identity's event has crossed the broker: in well
# under a second normally; the deadline only bounds a broken run.
EVENT_DEADLINE = 20.0

# A doctor who never set a booking policy (spec/API.md, "Booking policy").
NO_POLICY = {
    "min_notice_minutes": 0,
    "booking_horizon_days": None,
    "cancellation_notice_minutes": 0,
    "max_active_per_patient": None,
}


def token(stack: Stack, credentials: Credentials) -> str:
    with stack.client() as client:
        return login(client, credentials.email, credentials.password)["access"]


@pytest.fixture(scope="module")
def admin_token(stack: Stack, admin: Credentials) -> str:
    return token(stack, admin)


@pytest.fixture
def as_patient(stack: Stack, patient: User) -> Iterator[httpx.Client]:
    with stack.client(patient.access) as client:
        yield client


@pytest.fixture
def as_admin(stack: Stack, admin_token: str) -> Iterator[httpx.Client]:
    with stack.client(admin_token) as client:
        yield client


def unique_name(prefix: str) -> str:
    # Letters only: a hex id would make "search=cardio" match unrelated names.
    tag = "".join(chr(ord("a") + int(c, 16) % 26) for c in uuid.uuid4().hex[:10])
    return f"{prefix} Q{tag}"


def new_doctor(stack: Stack, full_name: str) -> User:
    return new_user(stack, "doctor", full_name=full_name)


def profile_shows(client: httpx.Client, doctor_id: int, **expected: Any) -> dict[str, Any]:
    """Poll ``GET /api/doctors/{id}/`` until it answers 200 with the expected fields; return the body."""

    def check() -> dict[str, Any] | None:
        response = client.get(f"/api/doctors/{doctor_id}/")
        if response.status_code != 200:
            return None
        body = response.json()
        return body if all(body[key] == value for key, value in expected.items()) else None

    return wait_until(check, timeout=EVENT_DEADLINE, what=f"doctor {doctor_id} showing {expected}")


def listed_ids(client: httpx.Client, **params: str) -> list[int]:
    response = client.get("/api/doctors/", params=params)
    assert response.status_code == 200, response.text
    return [doctor["id"] for doctor in response.json()["results"]]


def test_a_registered_doctor_appears_in_the_doctor_list(stack, as_patient):
    name = unique_name("Dora Newcomer")
    doctor = new_doctor(stack, name)
    assert profile_shows(as_patient, doctor.id) == {
        "id": doctor.id,
        "full_name": name,
        "specialty": "",
        "bio": "",
        "years_of_experience": 0,
        "booking_policy": NO_POLICY,
    }
    assert listed_ids(as_patient, search=name.split()[-1]) == [doctor.id]


def test_a_doctor_fills_in_their_profile_and_patients_find_it(stack, as_patient):
    name = unique_name("Carl Heart")
    doctor = new_doctor(stack, name)
    specialty = f"Cardiology {name.split()[-1]}"
    with stack.client(doctor.access) as as_doctor:
        wait_until(
            lambda: as_doctor.get("/api/doctors/me/").status_code == 200,
            timeout=EVENT_DEADLINE,
            what="the doctor's own profile",
        )
        body = {"specialty": specialty, "bio": "Hearts.", "years_of_experience": 7}
        response = as_doctor.patch("/api/doctors/me/", json=body)
        assert response.status_code == 200, response.text
        assert response.json() == {"id": doctor.id, "full_name": name, **body, "booking_policy": NO_POLICY}
        problem(as_doctor.patch("/api/doctors/me/", json={"years_of_experience": 81}), 422)

    tag = name.split()[-1]
    assert listed_ids(as_patient, search=tag.upper()) == [doctor.id]
    assert listed_ids(as_patient, search="cardio", specialty=specialty) == [doctor.id]
    assert listed_ids(as_patient, specialty=specialty.lower()) == [doctor.id]
    assert listed_ids(as_patient, specialty="cardio") == []
    assert as_patient.get(f"/api/doctors/{doctor.id}/").json()["specialty"] == specialty


def test_the_doctor_list_is_paginated_with_links_on_the_gateway(stack, as_admin):
    for _ in range(2):
        new_doctor(stack, unique_name("Paged Doctor"))
    wait_until(lambda: as_admin.get("/api/doctors/").json()["count"] >= 2, timeout=EVENT_DEADLINE)
    page = as_admin.get("/api/doctors", params={"page_size": 1}).json()
    assert len(page["results"]) == 1
    assert page["previous"] is None
    assert page["next"].startswith(stack.base_url + "/api/doctors/")
    second = as_admin.get(page["next"])
    assert second.status_code == 200
    assert second.json()["results"][0]["id"] != page["results"][0]["id"]


def test_who_may_use_the_doctor_endpoints(stack, patient, admin_token):
    doctor = new_doctor(stack, unique_name("Role Matrix"))
    with stack.client() as anonymous:
        for path in ("/api/doctors/", f"/api/doctors/{doctor.id}/", "/api/doctors/me/"):
            assert anonymous.get(path).status_code == 401
    with stack.client(patient.access) as as_patient:
        profile_shows(as_patient, doctor.id)
        problem(as_patient.get("/api/doctors/me/"), 403)
        problem(as_patient.patch(f"/api/doctors/{doctor.id}/", json={"bio": "x"}), 403)
    with stack.client(doctor.access) as as_doctor:
        problem(as_doctor.get("/api/doctors/"), 403)
        problem(as_doctor.get(f"/api/doctors/{doctor.id}/"), 403)
        assert as_doctor.get("/api/doctors/me/").json()["id"] == doctor.id
        problem(as_doctor.patch(f"/api/doctors/{doctor.id}/", json={"bio": "x"}), 403)
    with stack.client(admin_token) as as_admin:
        problem(as_admin.get("/api/doctors/me/"), 403)
        response = as_admin.patch(f"/api/doctors/{doctor.id}/", json={"bio": "Checked by the admin."})
        assert response.status_code == 200, response.text
        assert response.json()["bio"] == "Checked by the admin."
        problem(as_admin.get("/api/doctors/999999999/"), 404)


def test_an_admin_rename_follows_into_the_doctor_profile(stack, as_admin):
    doctor = new_doctor(stack, unique_name("Old Name"))
    profile_shows(as_admin, doctor.id)
    new_name = unique_name("New Name")
    response = as_admin.patch(f"/api/users/{doctor.id}/", json={"full_name": new_name})
    assert response.status_code == 200, response.text
    profile_shows(as_admin, doctor.id, full_name=new_name)


def test_a_doctor_renaming_themselves_is_followed(stack, as_admin):
    doctor = new_doctor(stack, unique_name("Before Rename"))
    profile_shows(as_admin, doctor.id)
    new_name = unique_name("After Rename")
    with stack.client(doctor.access) as as_doctor:
        assert as_doctor.patch("/api/auth/me/", json={"full_name": new_name}).status_code == 200
    profile_shows(as_admin, doctor.id, full_name=new_name)
    assert listed_ids(as_admin, search=new_name.split()[-1]) == [doctor.id]


def test_a_deleted_doctor_disappears_from_the_doctors(stack, as_admin, as_patient):
    name = unique_name("Leaving Soon")
    doctor = new_doctor(stack, name)
    profile_shows(as_patient, doctor.id)
    assert as_admin.delete(f"/api/users/{doctor.id}/").status_code == 204
    wait_until(
        lambda: as_patient.get(f"/api/doctors/{doctor.id}/").status_code == 404,
        timeout=EVENT_DEADLINE,
        what="the deleted doctor hidden",
    )
    assert listed_ids(as_patient, search=name.split()[-1]) == []
