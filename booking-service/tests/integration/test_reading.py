"""Reading appointments: who sees which, filters, ordering, pagination and names."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from booking.config import Settings
from booking.main import create_app


@pytest.fixture
def cast(new_id):
    """A patient and a doctor with an appointment, and strangers of every role."""
    return {
        "patient": new_id(),
        "doctor": new_id(),
        "other_patient": new_id(),
        "other_doctor": new_id(),
        "admin": new_id(),
    }


@pytest.mark.parametrize(
    ("who", "role", "status"),
    [
        ("patient", "patient", 200),
        ("doctor", "doctor", 200),
        ("admin", "admin", 200),
        ("other_patient", "patient", 404),
        ("other_doctor", "doctor", 404),
    ],
)
def test_an_appointment_is_visible_to_its_patient_its_doctor_and_admins_only(
    client, seed, callers, cast, who, role, status
):
    appointment = seed(patient_id=cast["patient"], doctor_id=cast["doctor"])
    response = client.get(f"/api/appointments/{appointment.id}/", headers=callers(role, cast[who]).headers)
    assert response.status_code == status
    if status == 404:
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "appointment_not_found"


def test_someone_elses_appointment_looks_exactly_like_a_missing_one(client, seed, callers, cast):
    appointment = seed(patient_id=cast["patient"], doctor_id=cast["doctor"])
    stranger = callers("patient", cast["other_patient"]).headers
    hidden = client.get(f"/api/appointments/{appointment.id}/", headers=stranger)
    missing = client.get(f"/api/appointments/{appointment.id + 10**9}/", headers=stranger)
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["title"] == missing.json()["title"]


@pytest.mark.parametrize("bad_id", ["0", str(2**63)])
def test_an_invalid_appointment_id_is_a_422(client, callers, new_id, bad_id):
    assert (
        client.get(f"/api/appointments/{bad_id}/", headers=callers("admin", new_id()).headers).status_code
        == 422
    )


@pytest.mark.parametrize("bad_id", ["abc", "-1"])
def test_a_path_segment_that_is_not_a_number_names_no_appointment(client, callers, new_id, bad_id):
    assert (
        client.get(f"/api/appointments/{bad_id}/", headers=callers("admin", new_id()).headers).status_code
        == 404
    )


def test_deleting_my_appointments_list_is_a_405_not_a_bad_id(client, callers, new_id):
    # /api/appointments/me/ used to reach DELETE /api/appointments/{id}/ and fail on the id "me".
    response = client.delete("/api/appointments/me/", headers=callers("patient", new_id()).headers)
    assert response.status_code == 405
    assert response.headers["allow"] == "GET"
    assert response.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize("day", ["9999-12-31", "0001-01-01"])
def test_day_filters_at_the_ends_of_the_calendar_find_nothing(client, seed, callers, cast, day):
    seed(patient_id=cast["patient"], doctor_id=cast["doctor"])
    mine = client.get(
        "/api/appointments/me/", params={"date": day}, headers=callers("patient", cast["patient"]).headers
    )
    every = client.get(
        "/api/appointments/", params={"date": day}, headers=callers("admin", cast["admin"]).headers
    )
    assert mine.status_code == every.status_code == 200, (mine.text, every.text)
    assert mine.json()["count"] == every.json()["count"] == 0


def test_reading_needs_a_token(client, seed, cast):
    appointment = seed(patient_id=cast["patient"], doctor_id=cast["doctor"])
    assert client.get(f"/api/appointments/{appointment.id}/").status_code == 401
    assert client.get("/api/appointments/me/").status_code == 401
    assert client.get("/api/appointments/").status_code == 401


def test_a_patient_lists_their_own_appointments_newest_first(client, seed, callers, cast):
    first = seed(patient_id=cast["patient"], doctor_id=cast["doctor"], starts_in=timedelta(days=3))
    second = seed(patient_id=cast["patient"], doctor_id=cast["other_doctor"], starts_in=timedelta(days=1))
    seed(patient_id=cast["other_patient"], doctor_id=cast["doctor"])

    page = client.get("/api/appointments/me/", headers=callers("patient", cast["patient"]).headers).json()

    assert page["count"] == 2
    assert [a["id"] for a in page["results"]] == [second.id, first.id]
    assert page["next"] is None and page["previous"] is None


def test_a_doctor_lists_the_appointments_where_they_are_the_doctor(client, seed, callers, cast):
    mine = seed(patient_id=cast["patient"], doctor_id=cast["doctor"])
    seed(patient_id=cast["patient"], doctor_id=cast["other_doctor"])
    page = client.get("/api/appointments/me/", headers=callers("doctor", cast["doctor"]).headers).json()
    assert [a["id"] for a in page["results"]] == [mine.id]


def test_my_appointments_filter_by_status(client, seed, callers, cast):
    seed(patient_id=cast["patient"], doctor_id=cast["doctor"], status="pending")
    confirmed = seed(patient_id=cast["patient"], doctor_id=cast["doctor"], status="confirmed")
    page = client.get(
        "/api/appointments/me/",
        params={"status": "confirmed"},
        headers=callers("patient", cast["patient"]).headers,
    ).json()
    assert [a["id"] for a in page["results"]] == [confirmed.id]


def test_filtering_by_day_orders_by_start_time(client, seed, callers, cast):
    day = (datetime.now(UTC) + timedelta(days=2)).replace(hour=0, minute=0, second=0, microsecond=0)
    late = seed(patient_id=cast["patient"], doctor_id=cast["doctor"], start_time=day + timedelta(hours=15))
    early = seed(patient_id=cast["patient"], doctor_id=cast["doctor"], start_time=day + timedelta(hours=9))
    seed(patient_id=cast["patient"], doctor_id=cast["doctor"], start_time=day + timedelta(days=1, hours=9))

    page = client.get(
        "/api/appointments/me/",
        params={"date": day.date().isoformat()},
        headers=callers("doctor", cast["doctor"]).headers,
    ).json()

    assert [a["id"] for a in page["results"]] == [early.id, late.id]


def test_the_day_filter_means_the_day_in_the_clinic_time_zone(database_url, amqp_url, minter, seed, cast):
    from fastapi.testclient import TestClient

    app = create_app(
        Settings(
            database_url=database_url,
            amqp_url=amqp_url,
            clinic_timezone="America/New_York",
            messaging_enabled=False,
        )
    )
    minter.trust(app, "booking")
    # 2030-03-10 is the day New York moves its clocks forward: 23 hours long, 05:00Z to 04:00Z.
    inside = [datetime(2030, 3, 10, 5, 0, tzinfo=UTC), datetime(2030, 3, 11, 3, 30, tzinfo=UTC)]
    outside = [datetime(2030, 3, 10, 4, 30, tzinfo=UTC), datetime(2030, 3, 11, 4, 0, tzinfo=UTC)]
    made = {
        start: seed(patient_id=cast["patient"], doctor_id=cast["doctor"], start_time=start)
        for start in inside + outside
    }

    with TestClient(app) as client:
        page = client.get(
            "/api/appointments/me/",
            params={"date": "2030-03-10"},
            headers=minter.headers(cast["patient"], "patient"),
        ).json()

    assert [a["id"] for a in page["results"]] == [made[start].id for start in inside]


def test_admins_list_every_appointment_and_filter_by_doctor_patient_and_status(client, seed, callers, cast):
    a = seed(patient_id=cast["patient"], doctor_id=cast["doctor"], status="confirmed")
    b = seed(patient_id=cast["other_patient"], doctor_id=cast["doctor"])
    c = seed(patient_id=cast["patient"], doctor_id=cast["other_doctor"])
    admin = callers("admin", cast["admin"]).headers

    def ids(**params):
        return [
            x["id"] for x in client.get("/api/appointments/", params=params, headers=admin).json()["results"]
        ]

    assert ids() == [c.id, b.id, a.id]
    assert ids(doctor=cast["doctor"]) == [b.id, a.id]
    assert ids(patient=cast["patient"]) == [c.id, a.id]
    assert ids(doctor=cast["doctor"], patient=cast["patient"]) == [a.id]
    assert ids(status="pending") == [c.id, b.id]


@pytest.mark.parametrize(
    "params",
    [
        {"status": "done"},
        {"date": "2030-02-30"},
        {"date": "tomorrow"},
        {"date": "1700000000"},
        {"doctor": "x"},
        {"doctor": "0"},
        {"patient": "-4"},
        {"page": "0"},
        {"page_size": "101"},
    ],
)
def test_invalid_filters_are_a_422(client, callers, new_id, params):
    response = client.get("/api/appointments/", params=params, headers=callers("admin", new_id()).headers)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("path", "role"),
    [("/api/appointments/", "patient"), ("/api/appointments/", "doctor"), ("/api/appointments/me/", "admin")],
)
def test_list_endpoints_refuse_the_wrong_role(client, callers, new_id, path, role):
    assert client.get(path, headers=callers(role, new_id()).headers).status_code == 403


def test_lists_are_paginated_with_absolute_links(client, seed, callers, cast):
    made = [seed(patient_id=cast["patient"], doctor_id=cast["doctor"]) for _ in range(5)]
    headers = callers("patient", cast["patient"]).headers

    first = client.get("/api/appointments/me/", params={"page_size": 2}, headers=headers).json()
    last = client.get("/api/appointments/me/", params={"page_size": 2, "page": 3}, headers=headers).json()

    assert first["count"] == 5
    assert [a["id"] for a in first["results"]] == [made[4].id, made[3].id]
    assert first["next"].startswith("http") and "page=2" in first["next"]
    assert [a["id"] for a in last["results"]] == [made[0].id]
    assert last["next"] is None and "page=2" in last["previous"]


def test_names_are_empty_until_booking_has_heard_of_the_users(client, seed, callers, cast):
    appointment = seed(patient_id=cast["patient"], doctor_id=cast["doctor"])
    body = client.get(
        f"/api/appointments/{appointment.id}/", headers=callers("patient", cast["patient"]).headers
    ).json()
    assert (body["doctor_name"], body["patient_name"]) == ("", "")


def test_times_are_given_in_utc(client, seed, callers, cast):
    appointment = seed(patient_id=cast["patient"], doctor_id=cast["doctor"])
    body = client.get(
        f"/api/appointments/{appointment.id}/", headers=callers("patient", cast["patient"]).headers
    ).json()
    for field in ("start_time", "end_time", "created_at", "updated_at"):
        assert body[field].endswith("Z"), body[field]
        assert datetime.fromisoformat(body[field]).utcoffset() == timedelta(0)
