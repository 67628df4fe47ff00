"""Timeslots through the gateway: doctors publish their schedule, patients see what is free (spec/API.md)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest

from .api import User, login, new_user, problem
from .stack import Credentials, Stack, wait_until

# Identity's events reach scheduling in well under a second; the deadline bounds a broken run.
EVENT_DEADLINE = 20.0


def monday_in(weeks: int) -> date:
    today = datetime.now(UTC).date()
    return today + timedelta(days=7 * weeks + 7 - today.weekday())


def slot(day: date, hour: int, minute: int = 0, minutes: int = 30) -> dict[str, str]:
    start = datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)
    return {"start_time": _z(start), "end_time": _z(start + timedelta(minutes=minutes))}


def _z(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


@pytest.fixture(scope="module")
def admin_token(stack: Stack, admin: Credentials) -> str:
    with stack.client() as client:
        return login(client, admin.email, admin.password)["access"]


@pytest.fixture
def as_doctor(stack: Stack, doctor: User) -> Iterator[httpx.Client]:
    with stack.client(doctor.access) as client:
        yield client


@pytest.fixture
def as_patient(stack: Stack, patient: User) -> Iterator[httpx.Client]:
    with stack.client(patient.access) as client:
        yield client


def free_listing(client: httpx.Client, doctor_id: int, **params: str | int) -> httpx.Response:
    return client.get(f"/api/doctors/{doctor_id}/timeslots/", params={"page_size": 100, **params})


def test_a_doctor_publishes_a_week_and_patients_see_it_earliest_first_by_day(doctor, as_doctor, as_patient):
    monday = monday_in(8)
    pattern = {
        "date_from": str(monday),
        "date_to": str(monday + timedelta(days=6)),
        "weekdays": [0, 1, 2, 3, 4],
        "day_start": "09:00",
        "day_end": "12:00",
        "slot_minutes": 30,
    }
    response = as_doctor.post("/api/timeslots/bulk/", json=pattern)
    assert response.status_code == 201, response.text
    created = response.json()["created"]
    assert len(created) == 30
    assert [t["start_time"] for t in created] == sorted(t["start_time"] for t in created)

    everything = free_listing(as_patient, doctor.id)
    assert everything.status_code == 200, everything.text
    assert everything.json()["count"] == 30
    assert [t["id"] for t in everything.json()["results"]] == [t["id"] for t in created]

    wednesday = monday + timedelta(days=2)
    one_day = free_listing(as_patient, doctor.id, date=str(wednesday)).json()["results"]
    assert [t["start_time"] for t in one_day] == [
        f"{wednesday}T{hour:02d}:{minute:02d}:00Z" for hour in (9, 10, 11) for minute in (0, 30)
    ]
    assert {t["doctor_id"] for t in one_day} == {doctor.id}
    assert {t["is_available"] for t in one_day} == {True}
    range_ = free_listing(
        as_patient, doctor.id, date_from=str(wednesday), date_to=str(wednesday + timedelta(days=1))
    )
    assert range_.json()["count"] == 12
    # The same page without the trailing slash.
    paged = as_patient.get(f"/api/doctors/{doctor.id}/timeslots", params={"page_size": 7})
    assert paged.status_code == 200
    assert paged.json()["next"].startswith(
        f"{str(as_patient.base_url).rstrip('/')}/api/doctors/{doctor.id}/timeslots"
    )


def test_a_bulk_pattern_is_all_or_nothing(doctor, as_doctor, as_patient):
    monday = monday_in(9)
    assert as_doctor.post("/api/timeslots/", json=slot(monday, 10, 15)).status_code == 201
    pattern = {
        "date_from": str(monday),
        "date_to": str(monday + timedelta(days=4)),
        "weekdays": [0, 1, 2, 3, 4],
        "day_start": "09:00",
        "day_end": "12:00",
        "slot_minutes": 30,
    }
    conflict = problem(as_doctor.post("/api/timeslots/bulk/", json=pattern), 409)
    assert conflict["conflicts"] == [slot(monday, 10), slot(monday, 10, 30)]
    assert free_listing(as_patient, doctor.id).json()["count"] == 1
    too_many = {
        **pattern,
        "date_to": str(monday + timedelta(days=60)),
        "weekdays": list(range(7)),
        "slot_minutes": 5,
    }
    problem(as_doctor.post("/api/timeslots/bulk/", json=too_many), 422)


def test_timeslots_never_overlap_also_when_requested_at_once(doctor, as_doctor, stack):
    day = monday_in(10)
    assert as_doctor.post("/api/timeslots/", json=slot(day, 9)).status_code == 201
    assert as_doctor.post("/api/timeslots/", json=slot(day, 9, 30)).status_code == 201  # back to back
    assert (
        problem(as_doctor.post("/api/timeslots/", json=slot(day, 9, 15)), 409)["code"] == "timeslot_overlap"
    )

    barrier = threading.Barrier(10)

    def attempt(minute: int) -> int:
        with stack.client(doctor.access) as client:
            barrier.wait()
            return client.post("/api/timeslots/", json=slot(day, 14, minute)).status_code

    with ThreadPoolExecutor(10) as pool:
        statuses = list(pool.map(attempt, range(0, 20, 2)))
    assert sorted(statuses) == [201] + [409] * 9
    assert as_doctor.get("/api/timeslots/", params={"date": str(day)}).json()["count"] == 3


def test_invalid_timeslots_are_refused(as_doctor):
    day = monday_in(10)
    ends_first = {"start_time": slot(day, 10)["start_time"], "end_time": slot(day, 9)["start_time"]}
    assert problem(as_doctor.post("/api/timeslots/", json=ends_first), 422)["errors"]
    past = slot(datetime.now(UTC).date() - timedelta(days=1), 9)
    problem(as_doctor.post("/api/timeslots/", json=past), 422)
    problem(as_doctor.post("/api/timeslots/", json=slot(day, 9, minutes=3)), 422)
    problem(
        as_doctor.post("/api/timeslots/", content=b"{oops", headers={"Content-Type": "application/json"}), 400
    )


def test_who_may_use_the_timeslot_endpoints(stack, doctor, as_doctor, patient, admin_token):
    timeslot = as_doctor.post("/api/timeslots/", json=slot(monday_in(11), 9)).json()
    own_paths = [
        ("POST", "/api/timeslots/"),
        ("GET", "/api/timeslots/"),
        ("GET", f"/api/timeslots/{timeslot['id']}/"),
    ]
    with stack.client() as anonymous:
        for method, path in [*own_paths, ("GET", f"/api/doctors/{doctor.id}/timeslots/")]:
            assert anonymous.request(method, path).status_code == 401
    for token in (patient.access, admin_token):
        with stack.client(token) as client:
            for method, path in own_paths:
                problem(client.request(method, path, json=slot(monday_in(11), 10)), 403)
            problem(client.delete(f"/api/timeslots/{timeslot['id']}/"), 403)
            assert free_listing(client, doctor.id).status_code == 200
    problem(free_listing(as_doctor, doctor.id), 403)
    assert as_doctor.get(f"/api/timeslots/{timeslot['id']}/").json() == timeslot


def test_another_doctors_timeslot_is_not_found(stack, as_doctor):
    timeslot = as_doctor.post("/api/timeslots/", json=slot(monday_in(12), 9)).json()
    other = new_user(stack, "doctor", full_name="Otto Other")
    with stack.client(other.access) as as_other:
        problem(as_other.get(f"/api/timeslots/{timeslot['id']}/"), 404)
        problem(as_other.delete(f"/api/timeslots/{timeslot['id']}/"), 404)
        assert as_other.get("/api/timeslots/").json()["count"] == 0
    assert as_doctor.delete(f"/api/timeslots/{timeslot['id']}/").status_code == 204
    problem(as_doctor.get(f"/api/timeslots/{timeslot['id']}/"), 404)


def test_an_unknown_doctor_has_no_timeslots(as_patient):
    problem(free_listing(as_patient, 987_654_321), 404)


def test_a_deleted_doctors_future_free_timeslots_disappear(stack, doctor, as_doctor, as_patient, admin_token):
    assert as_doctor.post("/api/timeslots/", json=slot(monday_in(13), 9)).status_code == 201
    assert free_listing(as_patient, doctor.id).json()["count"] == 1
    with stack.client(admin_token) as as_admin:
        assert as_admin.delete(f"/api/users/{doctor.id}/").status_code == 204
    wait_until(
        lambda: free_listing(as_patient, doctor.id).status_code == 404,
        timeout=EVENT_DEADLINE,
        what="the deleted doctor's timeslots gone",
    )
    assert as_doctor.get("/api/timeslots/").status_code == 401


def test_a_booked_timeslot_leaves_the_free_list_and_cannot_be_deleted(doctor, as_doctor, as_patient):
    timeslot = as_doctor.post("/api/timeslots/", json=slot(monday_in(14), 9)).json()
    booked = as_patient.post("/api/appointments/", json={"timeslot_id": timeslot["id"]})
    assert booked.status_code == 201, booked.text
    assert timeslot["id"] not in [t["id"] for t in free_listing(as_patient, doctor.id).json()["results"]]
    assert problem(as_doctor.delete(f"/api/timeslots/{timeslot['id']}/"), 409)["code"] == "timeslot_reserved"
    assert as_doctor.get(f"/api/timeslots/{timeslot['id']}/").json()["is_available"] is False

    assert as_patient.delete(f"/api/appointments/{booked.json()['id']}/").status_code == 204
    wait_until(
        lambda: timeslot["id"] in [t["id"] for t in free_listing(as_patient, doctor.id).json()["results"]],
        timeout=EVENT_DEADLINE,
        what="the cancelled appointment's timeslot free again",
    )
