"""Hostile input found by the robustness suite's fuzzer: each a clear 4xx, never a 500."""

import pytest

PROBLEM = "application/problem+json"


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("9999-12-31T22:00:00-05:00", "9999-12-31T23:00:00-05:00"),  # overflowed converting to UTC
        ("9999-12-31T22:00:00Z", "9999-12-31T23:00:00Z"),
        ("0001-01-01T00:00:00+05:00", "0001-01-01T01:00:00+05:00"),  # underflowed converting to UTC
    ],
)
def test_timeslot_times_at_the_ends_of_the_calendar_are_a_422(client, doctor, start, end):
    _, headers = doctor
    response = client.post("/api/timeslots/", json={"start_time": start, "end_time": end}, headers=headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.json()["errors"][0]["field"] == "start_time"


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("1900000000", "1900001800"),  # digits: read as Unix timestamps by pydantic's lax mode
        ("1900000000.5", "1900001800.5"),
        ("2030-03-04", "2030-03-05"),  # a date alone is not a time (it was read as midnight)
        ("2030-03-04T9:00:00Z", "2030-03-04T10:00:00Z"),
    ],
)
def test_timeslot_times_that_are_not_rfc_3339_date_times_are_a_422(client, doctor, start, end):
    _, headers = doctor
    response = client.post("/api/timeslots/", json={"start_time": start, "end_time": end}, headers=headers)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == "start_time"


@pytest.mark.parametrize("day", ["1899849600", 1899849600, "2030-3-4"])
def test_a_working_patterns_days_that_are_not_iso_dates_are_a_422(client, doctor, day):
    _, headers = doctor
    pattern = {
        "date_from": day,
        "date_to": "2030-03-20",
        "weekdays": [0],
        "day_start": "09:00",
        "day_end": "10:00",
        "slot_minutes": 30,
    }
    response = client.post("/api/timeslots/bulk/", json=pattern, headers=headers)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == "date_from"


def test_a_working_pattern_ending_on_the_last_day_of_the_calendar_is_a_422(client, doctor):
    _, headers = doctor
    pattern = {
        "date_from": "9999-12-30",
        "date_to": "9999-12-31",
        "weekdays": [0, 1, 2, 3, 4, 5, 6],
        "day_start": "09:00",
        "day_end": "10:00",
        "slot_minutes": 30,
    }
    response = client.post("/api/timeslots/bulk/", json=pattern, headers=headers)
    assert response.status_code == 422, response.text


def test_day_filters_on_the_last_and_first_days_of_the_calendar_find_nothing(client, doctor, patient):
    doctor_id, doctor_headers = doctor
    _, patient_headers = patient
    client.post(
        "/api/timeslots/",
        json={"start_time": "2040-05-06T11:00:00Z", "end_time": "2040-05-06T11:30:00Z"},
        headers=doctor_headers,
    )
    for day in ("9999-12-31", "0001-01-01"):
        own = client.get("/api/timeslots/", params={"date": day}, headers=doctor_headers)
        assert own.status_code == 200, own.text
        assert own.json()["count"] == 0
        free = client.get(
            f"/api/doctors/{doctor_id}/timeslots/", params={"date": day}, headers=patient_headers
        )
        assert free.status_code == 200, free.text
        assert free.json()["count"] == 0


@pytest.mark.parametrize("day", ["0", "1700000000", "2040-5-6"])
def test_a_day_filter_that_is_not_an_iso_date_is_a_422(client, doctor, patient, day):
    doctor_id, doctor_headers = doctor
    _, patient_headers = patient
    assert client.get("/api/timeslots/", params={"date": day}, headers=doctor_headers).status_code == 422
    for name in ("date", "date_from", "date_to"):
        response = client.get(
            f"/api/doctors/{doctor_id}/timeslots/", params={name: day}, headers=patient_headers
        )
        assert response.status_code == 422, (name, response.text)


def test_reading_the_bulk_path_is_a_405_listing_what_it_allows(client, doctor):
    _, headers = doctor
    response = client.get("/api/timeslots/bulk/", headers=headers)
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert client.options("/api/timeslots/", headers=headers).headers["allow"] == "GET, POST"
    assert client.options("/api/timeslots/1/", headers=headers).headers["allow"] == "DELETE, GET"
