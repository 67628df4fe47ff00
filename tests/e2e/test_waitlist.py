"""The waitlist through the gateway (spec/API.md "Waitlist"): who gets an offer and in which
order, that an offer holds the timeslot for its patient alone, that an expired offer passes
on, and that the offered patient's other appointments do not disturb it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest

from .api import User, new_user, problem
from .stack import Stack, StackFactory, wait_until
from .test_appointments import (
    EVENT_DEADLINE,
    book,
    booked,
    cancel,
    free_timeslot_ids,
    new_timeslot,
    wait_until_free,
)
from .test_booking_race import SMALL_POOLS, register_patients
from .test_lifecycle import history, reschedule, set_policy

ENTRY_FIELDS = {"id", "doctor_id", "date_from", "date_to", "created_at", "offer"}
OFFER_FIELDS = {"timeslot_id", "start_time", "end_time", "expires_at"}


def clinic_day(timeslot: dict[str, Any]) -> str:
    # The e2e stack's clinic time zone is UTC.
    return datetime.fromisoformat(timeslot["start_time"]).astimezone(UTC).date().isoformat()


def join(stack: Stack, patient: User, doctor_id: int, date_from: str, date_to: str) -> httpx.Response:
    with stack.client(patient.access) as client:
        return client.post(
            "/api/waitlist/", json={"doctor_id": doctor_id, "date_from": date_from, "date_to": date_to}
        )


def joined(
    stack: Stack, patient: User, doctor: User, day_from: str, day_to: str | None = None
) -> dict[str, Any]:
    """Join (201); booking hears of a new doctor by event, so a brand-new one may take a moment."""

    def attempt() -> httpx.Response | None:
        response = join(stack, patient, doctor.id, day_from, day_to or day_from)
        return None if response.status_code == 404 else response

    response = wait_until(attempt, timeout=EVENT_DEADLINE, what="the doctor known to booking")
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == ENTRY_FIELDS and body["offer"] is None
    return body


def entries(stack: Stack, patient: User) -> list[dict[str, Any]]:
    with stack.client(patient.access) as client:
        response = client.get("/api/waitlist/me/")
    assert response.status_code == 200, response.text
    return response.json()["results"]


def offer_of(stack: Stack, patient: User, entry_id: int) -> dict[str, Any] | None:
    entry = next(e for e in entries(stack, patient) if e["id"] == entry_id)
    return entry["offer"]


def wait_for_offer(stack: Stack, patient: User, entry_id: int, timeslot_id: int) -> dict[str, Any]:
    offer = wait_until(
        lambda: (o := offer_of(stack, patient, entry_id)) and o["timeslot_id"] == timeslot_id and o,
        timeout=EVENT_DEADLINE,
        what=f"an offer of timeslot {timeslot_id} to entry {entry_id}",
    )
    assert set(offer) == OFFER_FIELDS
    return offer


@pytest.fixture
def taken(stack: Stack, doctor: User) -> Iterator[tuple[dict[str, Any], dict[str, Any], User]]:
    """A timeslot of the doctor booked by a first patient: (timeslot, appointment, that patient)."""
    first = new_user(stack, "patient", full_name="First Patient")
    timeslot = new_timeslot(stack, doctor)
    yield timeslot, booked(stack, first, timeslot["id"]), first


# -- joining, listing, leaving ---------------------------------------------------------------


def test_joining_validates_the_range_the_doctor_and_duplicates(stack, patient, doctor):
    today = date.today()
    joined(
        stack,
        patient,
        doctor,
        (today + timedelta(days=1)).isoformat(),
        (today + timedelta(days=3)).isoformat(),
    )

    past = join(stack, patient, doctor.id, (today - timedelta(days=1)).isoformat(), today.isoformat())
    assert problem(past, 422)["errors"][0]["field"] == "date_from"
    reversed_range = join(
        stack, patient, doctor.id, (today + timedelta(days=3)).isoformat(), today.isoformat()
    )
    assert problem(reversed_range, 422)["errors"][0]["field"] == "date_to"
    problem(join(stack, patient, 999_999_999, today.isoformat(), today.isoformat()), 404)
    problem(join(stack, patient, patient.id, today.isoformat(), today.isoformat()), 404)  # not a doctor
    twice = join(
        stack,
        patient,
        doctor.id,
        (today + timedelta(days=1)).isoformat(),
        (today + timedelta(days=3)).isoformat(),
    )
    assert problem(twice, 409)["code"] == "already_waiting"
    with stack.client(patient.access) as client:
        problem(client.post("/api/waitlist/", json={"doctor_id": doctor.id, "date_from": "tomorrow"}), 422)
    with stack.client(doctor.access) as client:
        problem(
            client.post(
                "/api/waitlist/",
                json={"doctor_id": doctor.id, "date_from": today.isoformat(), "date_to": today.isoformat()},
            ),
            403,
        )


def test_a_patient_lists_and_leaves_only_their_own_entries(stack, patient, doctor):
    day = (date.today() + timedelta(days=2)).isoformat()
    entry = joined(stack, patient, doctor, day)
    other = new_user(stack, "patient")

    assert [e["id"] for e in entries(stack, patient)] == [entry["id"]]
    assert entries(stack, other) == []
    with stack.client(other.access) as client:
        problem(client.delete(f"/api/waitlist/{entry['id']}/"), 404)
    with stack.client(patient.access) as client:
        assert client.delete(f"/api/waitlist/{entry['id']}/").status_code == 204
        problem(client.delete(f"/api/waitlist/{entry['id']}/"), 404)
    assert entries(stack, patient) == []


# -- offers --------------------------------------------------------------------------------


def test_a_cancelled_timeslot_is_offered_to_the_earliest_entry_and_held_for_that_patient_alone(
    stack, doctor, taken
):
    timeslot, appointment, first = taken
    day = clinic_day(timeslot)
    earliest, later = new_user(stack, "patient"), new_user(stack, "patient")
    earliest_entry = joined(stack, earliest, doctor, day)
    later_entry = joined(stack, later, doctor, day)

    assert cancel(stack, first.access, appointment["id"]).status_code == 204
    offer = wait_for_offer(stack, earliest, earliest_entry["id"], timeslot["id"])

    assert (offer["start_time"], offer["end_time"]) == (timeslot["start_time"], timeslot["end_time"])
    assert datetime.fromisoformat(offer["expires_at"]) > datetime.now(UTC)
    assert offer_of(stack, later, later_entry["id"]) is None
    assert timeslot["id"] not in free_timeslot_ids(stack, later, doctor.id)
    assert problem(book(stack, later, timeslot["id"]), 409)["code"] == "timeslot_not_available"
    problem(book(stack, first, timeslot["id"]), 409)

    mine = booked(stack, earliest, timeslot["id"])
    assert (mine["timeslot_id"], mine["status"]) == (timeslot["id"], "pending")
    assert entries(stack, earliest) == []  # booking the offer ends the entry
    assert offer_of(stack, later, later_entry["id"]) is None


def test_a_new_timeslot_in_the_range_is_offered(stack, patient, doctor):
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=4, hours=3)
    entry = joined(stack, patient, doctor, start.date().isoformat())
    outside = new_timeslot(stack, doctor, start=start + timedelta(days=1))
    inside = new_timeslot(stack, doctor, start=start)

    wait_for_offer(stack, patient, entry["id"], inside["id"])
    assert outside["id"] in free_timeslot_ids(stack, patient, doctor.id)


def test_an_offer_is_booked_only_within_the_doctors_notice_of_now(stack, patient):
    # The notice is checked when the patient books the offer, not only when it was made: a doctor
    # who raises it after the offer (or a start that came within it while the offer stood) sees
    # the offered patient refused like anyone else.
    doctor = new_user(stack, "doctor", full_name="Olga Offer")
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=2)
    entry = joined(stack, patient, doctor, start.date().isoformat())
    outside = new_timeslot(stack, doctor, start=start + timedelta(days=1))
    offered = new_timeslot(stack, doctor, start=start)
    wait_for_offer(stack, patient, entry["id"], offered["id"])

    set_policy(stack, doctor, min_notice_minutes=5 * 24 * 60)
    wait_until(
        lambda: outside["id"] not in free_timeslot_ids(stack, patient, doctor.id),
        timeout=EVENT_DEADLINE,
        what="the raised notice applied at scheduling",
    )
    assert problem(book(stack, patient, offered["id"]), 422)["code"] == "booking_notice"
    assert offer_of(stack, patient, entry["id"])["timeslot_id"] == offered["id"]  # the offer stands


def test_leaving_with_an_offer_passes_it_to_the_next_entry(stack, doctor, taken):
    timeslot, appointment, first = taken
    day = clinic_day(timeslot)
    leaving, next_one = new_user(stack, "patient"), new_user(stack, "patient")
    leaving_entry = joined(stack, leaving, doctor, day)
    next_entry = joined(stack, next_one, doctor, day)
    cancel(stack, first.access, appointment["id"])
    wait_for_offer(stack, leaving, leaving_entry["id"], timeslot["id"])

    with stack.client(leaving.access) as client:
        assert client.delete(f"/api/waitlist/{leaving_entry['id']}/").status_code == 204

    wait_for_offer(stack, next_one, next_entry["id"], timeslot["id"])
    problem(book(stack, leaving, timeslot["id"]), 409)


def test_cancelling_the_offered_patients_other_appointment_leaves_the_offer_standing(stack, doctor, taken):
    timeslot, appointment, first = taken
    day = clinic_day(timeslot)
    offered, next_one = new_user(stack, "patient"), new_user(stack, "patient")
    # The offered patient holds another appointment with the same doctor on the same day.
    other_timeslot = new_timeslot(
        stack, doctor, start=datetime.fromisoformat(timeslot["start_time"]) + timedelta(minutes=30)
    )
    other_appointment = booked(stack, offered, other_timeslot["id"])
    entry = joined(stack, offered, doctor, day)
    next_entry = joined(stack, next_one, doctor, day)
    cancel(stack, first.access, appointment["id"])
    offer = wait_for_offer(stack, offered, entry["id"], timeslot["id"])

    assert cancel(stack, offered.access, other_appointment["id"]).status_code == 204

    # The freed timeslot goes to the next entry (one open offer per entry); the first offer stands.
    wait_for_offer(stack, next_one, next_entry["id"], other_timeslot["id"])
    assert offer_of(stack, offered, entry["id"]) == offer
    assert booked(stack, offered, timeslot["id"])["timeslot_id"] == timeslot["id"]


def test_the_offered_patient_may_move_an_appointment_into_the_offer_and_nobody_else_may(stack, doctor, taken):
    timeslot, appointment, first = taken
    offered, other = new_user(stack, "patient"), new_user(stack, "patient")
    # The offered patient already has a later appointment: the offer is the earlier one they waited for.
    later = new_timeslot(
        stack, doctor, start=datetime.fromisoformat(timeslot["start_time"]) + timedelta(days=3)
    )
    mine = booked(stack, offered, later["id"])
    others = booked(stack, other, new_timeslot(stack, doctor)["id"])
    entry = joined(stack, offered, doctor, clinic_day(timeslot))
    cancel(stack, first.access, appointment["id"])
    offer = wait_for_offer(stack, offered, entry["id"], timeslot["id"])

    refused = reschedule(stack, other.access, others["id"], timeslot["id"])
    assert problem(refused, 409)["code"] == "timeslot_not_available"
    assert offer_of(stack, offered, entry["id"]) == offer  # a refused move leaves the offer's hold

    response = reschedule(stack, offered.access, mine["id"], timeslot["id"])
    assert response.status_code == 200, response.text
    moved = response.json()
    assert (moved["id"], moved["timeslot_id"], moved["start_time"]) == (
        mine["id"],
        timeslot["id"],
        timeslot["start_time"],
    )
    assert entries(stack, offered) == []  # moving into the offer accepts it and ends the entry
    wait_until_free(stack, other, doctor.id, later["id"])  # the appointment's old timeslot is free
    assert timeslot["id"] not in free_timeslot_ids(stack, other, doctor.id)
    last = history(stack, offered.access, mine["id"])[-1]
    assert (last["action"], last["from_timeslot_id"], last["to_timeslot_id"]) == (
        "rescheduled",
        later["id"],
        timeslot["id"],
    )


def test_the_offered_patient_racing_others_for_the_timeslot_is_the_one_who_gets_it(stack, doctor, taken):
    timeslot, appointment, first = taken
    offered = new_user(stack, "patient")
    entry = joined(stack, offered, doctor, clinic_day(timeslot))
    cancel(stack, first.access, appointment["id"])
    wait_for_offer(stack, offered, entry["id"], timeslot["id"])
    racers = [offered, *register_patients(stack, 12)]

    clients = [stack.client(p.access, timeout=60) for p in racers]
    start = threading.Barrier(len(clients))
    statuses: dict[int, int] = {}

    def race(index: int) -> None:
        start.wait()
        statuses[index] = (
            clients[index].post("/api/appointments/", json={"timeslot_id": timeslot["id"]}).status_code
        )

    threads = [threading.Thread(target=race, args=(i,)) for i in range(len(clients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for client in clients:
        client.close()

    assert statuses[0] == 201
    assert sorted(statuses[i] for i in range(1, len(racers))) == [409] * (len(racers) - 1)


# -- expiry (a stack of its own with short offers) -------------------------------------------------


@pytest.fixture(scope="module")
def quick(stacks: StackFactory) -> Iterator[Stack]:
    """Offers of three seconds, checked often."""
    stack = stacks.start(
        "quick-offers",
        env={**SMALL_POOLS, "WAITLIST_OFFER_MINUTES": "0.05", "WAITLIST_INTERVAL_SECONDS": "0.2"},
    )
    yield stack
    stack.close()


def test_an_expired_offer_passes_to_the_next_entry_and_then_the_timeslot_is_free_again(quick):
    doctor = new_user(quick, "doctor")
    first, second, third = (new_user(quick, "patient") for _ in range(3))
    timeslot = new_timeslot(quick, doctor)
    appointment = booked(quick, third, timeslot["id"])
    day = clinic_day(timeslot)
    first_entry = joined(quick, first, doctor, day)
    second_entry = joined(quick, second, doctor, day)

    cancel(quick, third.access, appointment["id"])
    wait_for_offer(quick, first, first_entry["id"], timeslot["id"])
    wait_for_offer(quick, second, second_entry["id"], timeslot["id"])  # after the first one expired

    wait_until(
        lambda: timeslot["id"] in free_timeslot_ids(quick, third, doctor.id),
        timeout=EVENT_DEADLINE,
        what="the timeslot free once nobody is left in line",
    )
    # Whoever lets an offer expire keeps waiting (for other timeslots), without an offer.
    assert offer_of(quick, first, first_entry["id"]) is None
    assert offer_of(quick, second, second_entry["id"]) is None
    assert booked(quick, third, timeslot["id"])["timeslot_id"] == timeslot["id"]


def test_an_offer_booked_after_it_expired_is_refused(quick):
    doctor = new_user(quick, "doctor")
    late, holder = new_user(quick, "patient"), new_user(quick, "patient")
    timeslot = new_timeslot(quick, doctor)
    appointment = booked(quick, holder, timeslot["id"])
    entry = joined(quick, late, doctor, clinic_day(timeslot))
    cancel(quick, holder.access, appointment["id"])
    wait_for_offer(quick, late, entry["id"], timeslot["id"])
    wait_until(
        lambda: offer_of(quick, late, entry["id"]) is None, timeout=EVENT_DEADLINE, what="the offer expired"
    )
    # Free again (nobody else waits): anyone may book it, the late patient like everyone else.
    wait_until(
        lambda: timeslot["id"] in free_timeslot_ids(quick, holder, doctor.id),
        timeout=EVENT_DEADLINE,
        what="the timeslot free again",
    )
    assert booked(quick, holder, timeslot["id"])["patient_id"] == holder.id
    problem(book(quick, late, timeslot["id"]), 409)
