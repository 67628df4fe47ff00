"""A doctor's own timeslots: POST/GET/DELETE /api/timeslots/."""

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

PROBLEM = "application/problem+json"


def create(client, headers, start, end, rfc3339):
    return client.post(
        "/api/timeslots/", json={"start_time": rfc3339(start), "end_time": rfc3339(end)}, headers=headers
    )


def test_a_doctor_publishes_a_timeslot_and_gets_it_back_in_utc(client, doctor, when, rfc3339):
    doctor_id, headers = doctor
    response = client.post(
        "/api/timeslots/",
        json={"start_time": "2040-05-06T11:00:00+02:00", "end_time": "2040-05-06T11:30:00+02:00"},
        headers=headers,
    )
    assert response.status_code == 201
    body = response.json()
    assert body == {
        "id": body["id"],
        "doctor_id": doctor_id,
        "start_time": "2040-05-06T09:00:00Z",
        "end_time": "2040-05-06T09:30:00Z",
        "is_available": True,
    }
    assert client.get(f"/api/timeslots/{body['id']}/", headers=headers).json() == body


def test_a_time_without_an_offset_is_read_in_the_clinic_time_zone(make_client, doctor):
    _, headers = doctor
    with make_client(clinic_timezone="America/New_York") as client:
        response = client.post(
            "/api/timeslots/",
            json={"start_time": "2040-01-10T09:00:00", "end_time": "2040-01-10T09:30:00"},
            headers=headers,
        )
    assert response.status_code == 201
    assert response.json()["start_time"] == "2040-01-10T14:00:00Z"


def test_the_path_without_a_trailing_slash_works_too(client, doctor, when, rfc3339):
    _, headers = doctor
    response = client.post(
        "/api/timeslots",
        json={"start_time": rfc3339(when(40)), "end_time": rfc3339(when(40, 10))},
        headers=headers,
    )
    assert response.status_code == 201


@pytest.mark.parametrize(
    ("start", "end", "field"),
    [
        ((40, 10), (40, 9), "end_time"),  # ends before it starts
        ((40, 10), (40, 10), "end_time"),  # ends when it starts
        ((40, 10, 0), (40, 10, 4), "end_time"),  # shorter than 5 minutes
        ((40, 8), (40, 20, 1), "end_time"),  # longer than 12 hours
        ((-1, 10), (-1, 11), "start_time"),  # in the past
    ],
)
def test_invalid_timeslots_are_refused_with_422(client, doctor, when, rfc3339, start, end, field):
    _, headers = doctor
    response = create(client, headers, when(*start), when(*end), rfc3339)
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    assert [e["field"] for e in response.json()["errors"]] == [field]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"start_time": "2040-01-01T09:00:00Z"},
        {"start_time": "tomorrow", "end_time": "2040-01-01T10:00:00Z"},
        {"start_time": 2208992400, "end_time": "2040-01-01T10:00:00Z"},
        {"start_time": "2040-01-01T09:00:00Z", "end_time": "2040-01-01T10:00:00Z", "doctor_id": 1},
    ],
)
def test_malformed_bodies_are_refused_with_422(client, doctor, body):
    _, headers = doctor
    response = client.post("/api/timeslots/", json=body, headers=headers)
    assert response.status_code == 422
    assert response.json()["errors"]


def test_a_body_that_is_not_json_is_400(client, doctor):
    _, headers = doctor
    response = client.post(
        "/api/timeslots/", content=b"{not json", headers={**headers, "content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == PROBLEM


def test_an_overlapping_timeslot_is_refused_with_409(client, doctor, when, rfc3339):
    _, headers = doctor
    assert create(client, headers, when(41, 9), when(41, 10), rfc3339).status_code == 201
    response = create(client, headers, when(41, 9, 30), when(41, 10, 30), rfc3339)
    assert response.status_code == 409
    assert response.json()["code"] == "timeslot_overlap"
    assert "SQL" not in response.text and "23P01" not in response.text


def test_back_to_back_timeslots_are_allowed(client, doctor, when, rfc3339):
    _, headers = doctor
    assert create(client, headers, when(42, 9), when(42, 9, 30), rfc3339).status_code == 201
    assert create(client, headers, when(42, 9, 30), when(42, 10), rfc3339).status_code == 201
    assert create(client, headers, when(42, 8, 30), when(42, 9), rfc3339).status_code == 201


def test_two_doctors_may_have_timeslots_at_the_same_time(client, new_id, callers, when, rfc3339):
    for _ in range(2):
        headers = callers("doctor", new_id()).headers
        assert create(client, headers, when(43, 9), when(43, 10), rfc3339).status_code == 201


def test_of_twenty_concurrent_overlapping_creations_exactly_one_succeeds(client, doctor, when, rfc3339):
    _, headers = doctor
    start = when(44, 9)
    barrier = threading.Barrier(20)

    def attempt(i: int) -> int:
        # Every request overlaps every other: all share [09:20, 09:30).
        begin = start + timedelta(minutes=i)
        barrier.wait()
        return create(client, headers, begin, begin + timedelta(minutes=30), rfc3339).status_code

    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(attempt, range(20)))
    assert sorted(statuses) == [201] + [409] * 19
    listed = client.get("/api/timeslots/", params={"date": str(start.date())}, headers=headers).json()
    assert listed["count"] == 1


def test_another_doctors_timeslot_is_not_found(client, doctor, new_id, callers, when, rfc3339):
    _, headers = doctor
    timeslot = create(client, headers, when(45, 9), when(45, 10), rfc3339).json()
    other = callers("doctor", new_id()).headers
    assert client.get(f"/api/timeslots/{timeslot['id']}/", headers=other).status_code == 404
    assert client.delete(f"/api/timeslots/{timeslot['id']}/", headers=other).status_code == 404
    assert client.get(f"/api/timeslots/{timeslot['id']}/", headers=headers).status_code == 200


def test_an_unknown_timeslot_is_404_as_is_a_non_numeric_id_and_a_zero_id_is_422(client, doctor):
    _, headers = doctor
    response = client.get("/api/timeslots/999999999999/", headers=headers)
    assert response.status_code == 404
    assert response.json()["code"] == "timeslot_not_found"
    # Like /api/doctors/{id}/: a path segment that is not a number names no timeslot.
    assert client.get("/api/timeslots/abc/", headers=headers).status_code == 404
    assert client.get("/api/timeslots/0/", headers=headers).status_code == 422


def test_a_doctor_deletes_a_free_timeslot(client, doctor, when, rfc3339):
    _, headers = doctor
    timeslot = create(client, headers, when(46, 9), when(46, 10), rfc3339).json()
    response = client.delete(f"/api/timeslots/{timeslot['id']}/", headers=headers)
    assert response.status_code == 204
    assert response.content == b""
    assert client.get(f"/api/timeslots/{timeslot['id']}/", headers=headers).status_code == 404
    # The time is free again.
    assert create(client, headers, when(46, 9), when(46, 10), rfc3339).status_code == 201


def test_the_own_listing_is_paginated_earliest_first(client, doctor, when, rfc3339):
    _, headers = doctor
    for hour in (15, 9, 12):
        create(client, headers, when(47, hour), when(47, hour + 1), rfc3339)
    create(client, headers, when(48, 9), when(48, 10), rfc3339)
    first = client.get("/api/timeslots/", params={"page_size": 2}, headers=headers).json()
    assert first["count"] == 4
    assert [t["start_time"] for t in first["results"]] == [rfc3339(when(47, 9)), rfc3339(when(47, 12))]
    assert first["previous"] is None
    second = client.get(first["next"], headers=headers).json()
    assert [t["start_time"] for t in second["results"]] == [rfc3339(when(47, 15)), rfc3339(when(48, 9))]
    assert second["next"] is None
    one_day = client.get("/api/timeslots/", params={"date": str(when(48).date())}, headers=headers).json()
    assert [t["start_time"] for t in one_day["results"]] == [rfc3339(when(48, 9))]


def test_the_own_listing_shows_only_the_callers_timeslots(client, doctor, new_id, callers, when, rfc3339):
    _, headers = doctor
    create(client, headers, when(49, 9), when(49, 10), rfc3339)
    other = callers("doctor", new_id()).headers
    create(client, other, when(49, 9), when(49, 10), rfc3339)
    assert client.get("/api/timeslots/", headers=headers).json()["count"] == 1


def test_the_own_listing_date_means_a_day_in_the_clinic_time_zone(make_client, doctor):
    _, headers = doctor
    with make_client(clinic_timezone="America/New_York") as client:
        # 23:00 in New York on 10 January is already 11 January in UTC.
        for start, end in [
            ("2040-01-10T23:00:00", "2040-01-10T23:20:00"),
            ("2040-01-11T00:30:00", "2040-01-11T00:50:00"),
        ]:
            response = client.post(
                "/api/timeslots/", json={"start_time": start, "end_time": end}, headers=headers
            )
            assert response.status_code == 201
        tenth = client.get("/api/timeslots/", params={"date": "2040-01-10"}, headers=headers).json()
        eleventh = client.get("/api/timeslots/", params={"date": "2040-01-11"}, headers=headers).json()
    assert [t["start_time"] for t in tenth["results"]] == ["2040-01-11T04:00:00Z"]
    assert [t["start_time"] for t in eleventh["results"]] == ["2040-01-11T05:30:00Z"]


@pytest.mark.parametrize(
    "params", [{"date": "10/01/2040"}, {"is_available": "maybe"}, {"page": 0}, {"page_size": 101}]
)
def test_bad_listing_filters_are_422(client, doctor, params):
    _, headers = doctor
    assert client.get("/api/timeslots/", params=params, headers=headers).status_code == 422


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/api/timeslots/"),
        ("post", "/api/timeslots/bulk/"),
        ("get", "/api/timeslots/"),
        ("get", "/api/timeslots/1/"),
        ("delete", "/api/timeslots/1/"),
    ],
)
def test_only_doctors_manage_timeslots(client, new_id, callers, method, path):
    assert client.request(method, path).status_code == 401
    assert client.request(method, path, headers={"Authorization": "Bearer not-a-token"}).status_code == 401
    for role in ("patient", "admin"):
        response = client.request(method, path, headers=callers(role).headers)
        assert response.status_code == 403
        assert response.headers["content-type"] == PROBLEM


def test_an_expired_token_is_401(client, minter, new_id):
    headers = {"Authorization": f"Bearer {minter.token(new_id(), 'doctor', ttl=-60)}"}
    assert client.get("/api/timeslots/", headers=headers).status_code == 401


def test_a_local_time_the_clocks_skip_is_a_422_and_a_repeated_one_is_its_first(
    make_client, doctor, new_york_dst
):
    # On the spring-forward night 02:30 does not exist in New York: it was moved to 03:30 unasked.
    _, headers = doctor
    spring, fall = new_york_dst
    with make_client(clinic_timezone="America/New_York") as client:
        skipped = client.post(
            "/api/timeslots/",
            json={"start_time": f"{spring}T02:30:00", "end_time": f"{spring}T03:30:00"},
            headers=headers,
        )
        repeated = client.post(
            "/api/timeslots/",
            json={"start_time": f"{fall}T01:00:00", "end_time": f"{fall}T01:30:00"},
            headers=headers,
        )
    assert skipped.status_code == 422, skipped.text
    assert skipped.json()["errors"] == [
        {"field": "start_time", "message": "this local time does not exist in America/New_York"}
    ]
    assert repeated.status_code == 201, repeated.text
    assert repeated.json()["start_time"] == f"{fall}T05:00:00Z"  # 01:00 EDT, the first 01:00
