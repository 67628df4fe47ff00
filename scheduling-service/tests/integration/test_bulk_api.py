"""POST /api/timeslots/bulk/: a working pattern, all or nothing, in the clinic time zone."""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

NEW_YORK = ZoneInfo("America/New_York")


@pytest.fixture
def doctor_headers(doctor):
    return doctor[1]


def next_monday(weeks_ahead: int) -> date:
    today = datetime.now(UTC).date()
    return today + timedelta(days=7 * weeks_ahead + (7 - today.weekday()))


def week(monday: date, **changes) -> dict:
    body = {
        "date_from": str(monday),
        "date_to": str(monday + timedelta(days=6)),
        "weekdays": [0, 1, 2, 3, 4],
        "day_start": "09:00",
        "day_end": "12:00",
        "slot_minutes": 30,
    }
    body.update(changes)
    return body


def own(client, headers, **params) -> list[dict]:
    return client.get("/api/timeslots/", params={"page_size": 100, **params}, headers=headers).json()[
        "results"
    ]


def test_a_doctor_publishes_a_working_week_in_one_call(client, doctor_headers):
    monday = next_monday(10)
    response = client.post(
        "/api/timeslots/bulk/", json=week(monday, break_minutes=10), headers=doctor_headers
    )
    assert response.status_code == 201
    created = response.json()["created"]
    # 09:00, 09:40, 10:20, 11:00 (11:40 would end after 12:00), Monday to Friday.
    assert len(created) == 20
    starts = [t["start_time"] for t in created]
    assert starts == sorted(starts)
    assert starts[:4] == [f"{monday}T{h}:00Z" for h in ("09:00", "09:40", "10:20", "11:00")]
    assert {t["is_available"] for t in created} == {True}
    assert [t["id"] for t in own(client, doctor_headers)] == [t["id"] for t in created]


def test_a_pattern_overlapping_an_existing_timeslot_creates_nothing_and_lists_the_conflicts(
    client, doctor_headers
):
    monday = next_monday(11)
    existing = {"start_time": f"{monday}T10:15:00Z", "end_time": f"{monday}T10:45:00Z"}
    assert client.post("/api/timeslots/", json=existing, headers=doctor_headers).status_code == 201
    response = client.post("/api/timeslots/bulk/", json=week(monday), headers=doctor_headers)
    assert response.status_code == 409
    problem = response.json()
    assert problem["code"] == "timeslot_overlap"
    assert problem["conflicts"] == [
        {"start_time": f"{monday}T10:00:00Z", "end_time": f"{monday}T10:30:00Z"},
        {"start_time": f"{monday}T10:30:00Z", "end_time": f"{monday}T11:00:00Z"},
    ]
    assert len(own(client, doctor_headers)) == 1


def test_a_pattern_reaching_into_the_past_creates_nothing_and_lists_the_past_times(client, doctor_headers):
    today = datetime.now(UTC).date()
    body = week(today - timedelta(days=1), date_to=str(today + timedelta(days=3)), weekdays=list(range(7)))
    body.update(day_start="00:00", day_end="00:30")
    response = client.post("/api/timeslots/bulk/", json=body, headers=doctor_headers)
    assert response.status_code == 422
    problem = response.json()
    assert problem["code"] == "timeslot_in_past"
    assert problem["past"] == [
        {"start_time": f"{day}T00:00:00Z", "end_time": f"{day}T00:30:00Z"}
        for day in (today - timedelta(days=1), today)
    ]
    assert own(client, doctor_headers) == []


def test_more_than_five_hundred_timeslots_is_refused(client, doctor_headers):
    monday = next_monday(12)
    body = week(monday, date_to=str(monday + timedelta(days=30)), weekdays=list(range(7)), slot_minutes=5)
    response = client.post("/api/timeslots/bulk/", json=body, headers=doctor_headers)
    assert response.status_code == 422
    assert response.json()["code"] == "pattern_too_large"
    assert own(client, doctor_headers) == []


def test_five_hundred_timeslots_are_allowed(client, doctor_headers):
    monday = next_monday(13)
    body = week(
        monday, date_to=str(monday + timedelta(days=4)), day_start="08:00", day_end="16:20", slot_minutes=5
    )
    response = client.post("/api/timeslots/bulk/", json=body, headers=doctor_headers)
    assert response.status_code == 201
    assert len(response.json()["created"]) == 500


def test_a_pattern_matching_no_day_is_refused(client, doctor_headers):
    monday = next_monday(14)
    body = week(monday, date_to=str(monday + timedelta(days=1)), weekdays=[5, 6])
    response = client.post("/api/timeslots/bulk/", json=body, headers=doctor_headers)
    assert response.status_code == 422
    assert response.json()["code"] == "empty_pattern"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"date_to": "2000-01-01"}, "date_to"),
        ({"date_to": "2099-01-01"}, "date_to"),  # more than 366 days
        ({"weekdays": []}, "weekdays"),
        ({"weekdays": [0, 0]}, "weekdays"),
        ({"weekdays": [7]}, "weekdays.0"),
        ({"weekdays": ["0"]}, "weekdays.0"),
        ({"day_end": "09:00"}, "day_end"),
        ({"day_start": "9am"}, "day_start"),
        ({"slot_minutes": 4}, "slot_minutes"),
        ({"slot_minutes": 721}, "slot_minutes"),
        ({"slot_minutes": "30"}, "slot_minutes"),
        ({"break_minutes": -1}, "break_minutes"),
        ({"date_from": "next week"}, "date_from"),
        ({"lunch": True}, "lunch"),
    ],
)
def test_an_invalid_pattern_is_refused_with_the_offending_field(client, doctor_headers, changes, field):
    body = week(next_monday(15))
    body.update(changes)
    response = client.post("/api/timeslots/bulk/", json=body, headers=doctor_headers)
    assert response.status_code == 422
    assert field in [e["field"] for e in response.json()["errors"]]


def test_a_missing_field_is_refused(client, doctor_headers):
    body = week(next_monday(15))
    del body["slot_minutes"]
    response = client.post("/api/timeslots/bulk/", json=body, headers=doctor_headers)
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["slot_minutes"]


def test_working_hours_keep_their_local_time_across_daylight_saving_changes(
    make_client, doctor_headers, new_york_dst
):
    spring, fall = new_york_dst
    with make_client(clinic_timezone="America/New_York") as client:
        for day in (spring, fall):
            body = week(
                day - timedelta(days=1), date_to=str(day + timedelta(days=1)), weekdays=list(range(7))
            )
            body.update(day_start="09:00", day_end="10:00", slot_minutes=60)
            response = client.post("/api/timeslots/bulk/", json=body, headers=doctor_headers)
            assert response.status_code == 201
            starts = [datetime.fromisoformat(t["start_time"]) for t in response.json()["created"]]
            assert [s.astimezone(NEW_YORK).hour for s in starts] == [9, 9, 9]
            assert len({s.utcoffset() for s in starts}) == 1  # answered in UTC


def test_slots_in_the_spring_forward_gap_are_skipped(make_client, doctor_headers, new_york_dst):
    spring, _ = new_york_dst
    body = week(spring, date_to=str(spring), weekdays=[spring.weekday()], day_start="01:00", day_end="04:00")
    with make_client(clinic_timezone="America/New_York") as client:
        response = client.post("/api/timeslots/bulk/", json=body, headers=doctor_headers)
    assert response.status_code == 201
    local = [
        datetime.fromisoformat(t["start_time"]).astimezone(NEW_YORK).strftime("%H:%M")
        for t in response.json()["created"]
    ]
    assert local == ["01:00", "03:00", "03:30"]


def test_a_fall_back_day_creates_no_overlapping_slots(make_client, doctor_headers, new_york_dst):
    _, fall = new_york_dst
    body = week(fall, date_to=str(fall), weekdays=[fall.weekday()], day_start="00:00", day_end="04:00")
    with make_client(clinic_timezone="America/New_York") as client:
        response = client.post("/api/timeslots/bulk/", json=body, headers=doctor_headers)
    assert response.status_code == 201
    created = response.json()["created"]
    spans = [
        (datetime.fromisoformat(t["start_time"]), datetime.fromisoformat(t["end_time"])) for t in created
    ]
    assert all(end - start == timedelta(minutes=30) for start, end in spans)
    assert all(earlier[1] <= later[0] for earlier, later in zip(spans, spans[1:], strict=False))
    assert len(created) == 7  # 01:30-02:00 would straddle the repeated hour
