"""Calendar feeds through the gateway (spec/API.md "Calendar feeds"): a private URL that needs
no Authorization header, RFC 5545 that ``icalendar`` parses, stable UIDs, a SEQUENCE that
grows with every change, cancelled appointments kept, rotation, and the feed's rate limit."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from icalendar import Calendar

from .api import User, new_user, problem
from .stack import Stack, next_source_address
from .test_appointments import booked, cancel, new_timeslot, set_status


def feed_url(stack: Stack, user: User, *, rotate: bool = False) -> str:
    with stack.client(user.access) as client:
        response = client.post("/api/calendar/feed/rotate/") if rotate else client.get("/api/calendar/feed/")
    assert response.status_code == 200, response.text
    return response.json()["url"]


def fetch(url: str, *, source_address: str | None = None) -> httpx.Response:
    """The feed as a calendar app reads it: a plain GET of the URL, no Authorization header."""
    transport = httpx.HTTPTransport(local_address=source_address) if source_address else None
    with httpx.Client(transport=transport, timeout=15) as client:
        return client.get(url)


def events(url: str) -> dict[str, Any]:
    """The feed's VEVENTs by UID."""
    response = fetch(url)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/calendar")
    calendar = Calendar.from_ical(response.content)
    assert calendar["VERSION"] == "2.0"
    return {str(event["UID"]): event for event in calendar.walk("VEVENT")}


def utc(event: Any, name: str) -> datetime:
    value = event[name].dt
    assert value.utcoffset().total_seconds() == 0, f"{name} is not in UTC: {value}"
    return value


@pytest.fixture
def appointment(stack: Stack, patient: User, doctor: User) -> dict[str, Any]:
    return booked(stack, patient, new_timeslot(stack, doctor)["id"])


def test_the_feed_url_is_private_absolute_on_the_gateway_and_stable(stack, patient):
    url = feed_url(stack, patient)
    parts = urlsplit(url)

    assert f"{parts.scheme}://{parts.netloc}" == stack.base_url
    assert parts.path.startswith("/api/calendar/")
    assert len(parts.query) > 40  # an unguessable secret
    assert feed_url(stack, patient) == url
    assert feed_url(stack, new_user(stack, "patient")) != url
    assert events(url) == {}


def test_the_feed_follows_every_change_of_an_appointment(stack, patient, doctor, appointment):
    patient_feed, doctor_feed = feed_url(stack, patient), feed_url(stack, doctor)
    uid = f"appointment-{appointment['id']}@{urlsplit(stack.base_url).hostname}"

    pending = events(patient_feed)[uid]
    assert str(pending["STATUS"]) == "TENTATIVE"
    assert utc(pending, "DTSTART") == datetime.fromisoformat(appointment["start_time"]).astimezone(UTC)
    assert utc(pending, "DTEND") == datetime.fromisoformat(appointment["end_time"]).astimezone(UTC)
    assert "Dora Doctor" in str(pending["SUMMARY"]) or str(pending["SUMMARY"]).startswith("Appointment")
    assert "DTSTAMP" in pending

    assert set_status(stack, doctor.access, appointment["id"], "confirmed").status_code == 200
    confirmed = events(patient_feed)[uid]
    assert str(confirmed["STATUS"]) == "CONFIRMED"
    assert int(confirmed["SEQUENCE"]) > int(pending["SEQUENCE"])
    assert events(doctor_feed)[uid]["SEQUENCE"] == confirmed["SEQUENCE"]

    assert cancel(stack, patient.access, appointment["id"]).status_code == 204
    cancelled = events(patient_feed)[uid]  # kept, as cancelled
    assert str(cancelled["STATUS"]) == "CANCELLED"
    assert int(cancelled["SEQUENCE"]) > int(confirmed["SEQUENCE"])
    assert str(events(doctor_feed)[uid]["STATUS"]) == "CANCELLED"


def test_a_doctors_feed_names_the_patient_and_holds_only_their_appointments(
    stack, patient, doctor, appointment
):
    other_doctor = new_user(stack, "doctor", full_name="Otto Other")
    booked(stack, patient, new_timeslot(stack, other_doctor)["id"])

    doctor_events = events(feed_url(stack, doctor))
    assert list(doctor_events) == [f"appointment-{appointment['id']}@{urlsplit(stack.base_url).hostname}"]
    summary = str(next(iter(doctor_events.values()))["SUMMARY"])
    assert summary in ("Appointment with Pat Patient", "Appointment")  # the name arrives by event
    assert len(events(feed_url(stack, patient))) == 2


def test_a_rotated_feed_url_stops_working_and_the_new_one_shows_the_same_feed(stack, patient, appointment):
    old = feed_url(stack, patient)
    before = events(old)

    new = feed_url(stack, patient, rotate=True)

    assert new != old
    problem(fetch(old), 404)
    assert events(new).keys() == before.keys()
    assert feed_url(stack, patient) == new


def test_a_wrong_or_missing_feed_secret_is_not_found(stack, patient):
    url = feed_url(stack, patient)
    problem(fetch(url[:-4] + "AAAA"), 404)
    problem(fetch(url.split("?")[0] + "?token=x"), 404)
    problem(fetch(url.split("?")[0]), 422)


def test_feeds_are_for_doctors_and_patients_with_a_token(stack, admin):
    with stack.client() as client:
        problem(client.get("/api/calendar/feed/"), 401)
        problem(client.post("/api/calendar/feed/rotate/"), 401)
        token = client.post(
            "/api/auth/login/", json={"email": admin.email, "password": admin.password}
        ).json()
    with stack.client(token["access"]) as client:
        problem(client.get("/api/calendar/feed/"), 403)


def test_the_feed_is_rate_limited_per_address_at_the_default_settings(stack, patient):
    # The defaults: 120 a minute per address, in bursts of up to 60. A calendar app polls a few
    # times an hour; ninety requests at once from one address outrun the burst.
    url = feed_url(stack, patient)
    address = next_source_address()
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda _: fetch(url, source_address=address), range(90)))
    statuses = [answer.status_code for answer in answers]

    assert set(statuses) == {200, 429}
    assert 60 <= statuses.count(200) < 90
    refused = next(answer for answer in answers if answer.status_code == 429)
    problem(refused, 429)
    assert int(refused.headers["retry-after"]) >= 1
    # Another address is unaffected.
    assert fetch(url, source_address=next_source_address()).status_code == 200
