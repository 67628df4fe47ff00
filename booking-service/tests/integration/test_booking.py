"""Booking a timeslot: hold at scheduling (a stand-in here), then store appointment and event together."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from booking.main import create_app
from booking.models import User
from chassis.testkit import wait_until

from .conftest import count_appointments, make_settings


def test_a_patient_books_a_free_timeslot_and_gets_a_pending_appointment(client, scheduling, new_id, callers):
    patient, doctor, slot = new_id(), new_id(), new_id()
    scheduling.add_timeslot(slot, doctor)

    response = client.post(
        "/api/appointments/",
        json={"timeslot_id": slot, "reason": "Back pain"},
        headers=callers("patient", patient).headers,
    )

    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "pending"
    assert (body["timeslot_id"], body["doctor_id"], body["patient_id"]) == (slot, doctor, patient)
    assert body["reason"] == "Back pain"
    assert body["cancellation_reason"] is None
    assert body["start_time"] == scheduling.timeslots[slot].start_time.isoformat().replace("+00:00", "Z")
    assert set(body) == {
        "id", "timeslot_id", "doctor_id", "patient_id", "doctor_name", "patient_name", "start_time",
        "end_time", "status", "reason", "cancellation_reason", "created_at", "updated_at",
    }  # fmt: skip


def test_booking_holds_with_its_service_token_never_the_patients(client, scheduling, new_id, callers, minter):
    patient, slot = new_id(), new_id()
    scheduling.add_timeslot(slot, new_id())
    headers = callers("patient", patient).headers

    assert client.post("/api/appointments/", json={"timeslot_id": slot}, headers=headers).status_code == 201

    [hold] = scheduling.holds
    assert hold["authorization"] != headers["Authorization"]
    token = hold["authorization"].removeprefix("Bearer ")
    assert minter.service_verifier("scheduling").caller(token) == "booking"
    assert hold["patient_id"] == patient
    assert scheduling.holder_of(slot) == hold["reservation_id"]
    assert scheduling.releases == []


def test_a_booking_without_a_reason_has_an_empty_reason(client, scheduling, new_id, callers):
    slot = new_id()
    scheduling.add_timeslot(slot, new_id())
    response = client.post(
        "/api/appointments/", json={"timeslot_id": slot}, headers=callers("patient", new_id()).headers
    )
    assert response.json()["reason"] == ""


def test_a_booked_appointment_is_announced_with_its_reservation(client, scheduling, broker, new_id, callers):
    slot = new_id()
    scheduling.add_timeslot(slot, new_id())
    booked = client.post(
        "/api/appointments/", json={"timeslot_id": slot}, headers=callers("patient", new_id()).headers
    )

    [event] = wait_until(
        lambda: broker.published("booking.appointment.booked", appointment_id=booked.json()["id"])
    )
    assert event["data"]["reservation_id"] == scheduling.holds[0]["reservation_id"]
    assert event["data"]["status"] == "pending"


@pytest.mark.parametrize(
    ("arrange", "status", "code"),
    [
        ("unknown", 404, "timeslot_not_found"),
        ("taken", 409, "timeslot_not_available"),
        ("own", 409, "cannot_book_own_timeslot"),
        ("started", 422, "timeslot_started"),
    ],
)
def test_what_scheduling_refuses_is_passed_on_and_nothing_is_stored(
    app, client, scheduling, new_id, callers, arrange, status, code
):
    patient, slot = new_id(), new_id()
    if arrange == "taken":
        scheduling.add_timeslot(slot, new_id())
        scheduling.timeslots[slot].reservation_id = "someone-else"
    elif arrange == "own":
        scheduling.add_timeslot(slot, patient)
    elif arrange == "started":
        scheduling.add_timeslot(slot, new_id(), starts_in=-timedelta(minutes=5))

    response = client.post(
        "/api/appointments/", json={"timeslot_id": slot}, headers=callers("patient", patient).headers
    )

    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == code
    assert count_appointments(app) == 0


def test_the_second_booking_of_a_timeslot_is_refused(client, scheduling, new_id, callers):
    slot = new_id()
    scheduling.add_timeslot(slot, new_id())
    first = client.post(
        "/api/appointments/", json={"timeslot_id": slot}, headers=callers("patient", new_id()).headers
    )
    second = client.post(
        "/api/appointments/", json={"timeslot_id": slot}, headers=callers("patient", new_id()).headers
    )
    assert (first.status_code, second.status_code) == (201, 409)


def test_many_patients_booking_one_timeslot_at_once_give_exactly_one_appointment(
    app, client, scheduling, new_id, callers
):
    slot = new_id()
    scheduling.add_timeslot(slot, new_id())
    patients = [new_id() for _ in range(20)]

    def book(patient: int) -> int:
        return client.post(
            "/api/appointments/", json={"timeslot_id": slot}, headers=callers("patient", patient).headers
        ).status_code

    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(book, patients))

    assert sorted(statuses) == [201] + [409] * 19
    assert count_appointments(app) == 1


def test_the_partial_unique_index_refuses_a_second_active_appointment_and_the_hold_is_released(
    app, client, scheduling, seed, new_id, callers
):
    # scheduling believes the timeslot free, but booking already has an active appointment on it.
    slot = new_id()
    seed(patient_id=new_id(), doctor_id=new_id(), timeslot_id=slot, status="confirmed")
    scheduling.add_timeslot(slot, new_id())

    response = client.post(
        "/api/appointments/", json={"timeslot_id": slot}, headers=callers("patient", new_id()).headers
    )

    assert response.status_code == 409
    assert response.json()["code"] == "timeslot_not_available"
    assert count_appointments(app) == 1
    assert scheduling.releases == [
        {"timeslot_id": slot, "reservation_id": scheduling.holds[0]["reservation_id"]}
    ]
    assert scheduling.holder_of(slot) is None


def test_a_cancelled_appointment_does_not_block_booking_its_timeslot_again(
    client, scheduling, seed, new_id, callers
):
    slot = new_id()
    seed(patient_id=new_id(), doctor_id=new_id(), timeslot_id=slot, status="cancelled")
    scheduling.add_timeslot(slot, new_id())
    response = client.post(
        "/api/appointments/", json={"timeslot_id": slot}, headers=callers("patient", new_id()).headers
    )
    assert response.status_code == 201


def test_a_patient_booking_known_to_be_deactivated_is_refused_and_the_hold_released(
    app, client, scheduling, new_id, callers
):
    patient, slot = new_id(), new_id()
    scheduling.add_timeslot(slot, new_id())
    with app.state.db.transaction() as session:
        session.add(User(id=patient, full_name="Gone", role="patient", is_active=False, revision=2))

    response = client.post(
        "/api/appointments/", json={"timeslot_id": slot}, headers=callers("patient", patient).headers
    )

    assert response.status_code == 401
    assert response.json()["code"] == "account_deactivated"
    assert count_appointments(app) == 0
    assert scheduling.holder_of(slot) is None


def test_a_timeslot_of_a_doctor_known_to_be_deactivated_is_not_booked_and_the_hold_released(
    app, client, scheduling, new_id, callers
):
    # Found by the soak: scheduling had not heard of the deactivation yet and granted the
    # hold, booking had already cancelled the doctor's appointments: a new one stayed active.
    doctor, slot = new_id(), new_id()
    scheduling.add_timeslot(slot, doctor)
    with app.state.db.transaction() as session:
        session.add(User(id=doctor, full_name="Gone", role="doctor", is_active=False, revision=2))

    response = client.post(
        "/api/appointments/", json={"timeslot_id": slot}, headers=callers("patient", new_id()).headers
    )

    assert response.status_code == 404
    assert response.json()["code"] == "timeslot_not_found"
    assert count_appointments(app) == 0
    assert scheduling.holder_of(slot) is None


def test_users_booking_has_not_heard_of_get_placeholders_that_any_event_replaces(
    app, client, scheduling, new_id, callers
):
    patient, doctor, slot = new_id(), new_id(), new_id()
    scheduling.add_timeslot(slot, doctor)

    assert (
        client.post(
            "/api/appointments/", json={"timeslot_id": slot}, headers=callers("patient", patient).headers
        ).status_code
        == 201
    )

    with app.state.db.transaction() as session:
        known = {
            u.id: (u.role, u.is_active, u.revision)
            for u in session.scalars(select(User).where(User.id.in_([patient, doctor])))
        }
    assert known == {patient: ("patient", True, 0), doctor: ("doctor", True, 0)}


@pytest.mark.parametrize("scheduling_status", [500, 502, 503])
def test_a_failing_scheduling_gives_503_and_the_hold_is_released(
    app, client, scheduling, new_id, callers, scheduling_status
):
    slot = new_id()
    scheduling.add_timeslot(slot, new_id())
    scheduling.failures[slot] = scheduling_status

    response = client.post(
        "/api/appointments/", json={"timeslot_id": slot}, headers=callers("patient", new_id()).headers
    )

    assert response.status_code == 503
    assert response.json()["code"] == "scheduling_unavailable"
    assert count_appointments(app) == 0
    assert [r["reservation_id"] for r in scheduling.releases] == [scheduling.holds[0]["reservation_id"]]


def test_a_scheduling_that_does_not_answer_in_time_gives_503_and_frees_the_timeslot(
    app, client, scheduling, new_id, callers
):
    slot = new_id()
    scheduling.add_timeslot(slot, new_id())
    scheduling.delays[slot] = 2.0  # the app's timeout is 1 s

    response = client.post(
        "/api/appointments/", json={"timeslot_id": slot}, headers=callers("patient", new_id()).headers
    )

    assert response.status_code == 503
    assert count_appointments(app) == 0
    # The late hold went through at scheduling; booking's release undoes it.
    wait_until(lambda: scheduling.releases and scheduling.holder_of(slot) is None)


def test_an_unreachable_scheduling_gives_503_problem_and_stores_nothing(
    database_url, amqp_url, minter, new_id
):
    settings = make_settings(
        database_url, amqp_url, scheduling_url="http://127.0.0.1:1", messaging_enabled=False
    )
    app = create_app(settings)
    minter.trust(app, "booking")
    with TestClient(app) as client:
        response = client.post(
            "/api/appointments/", json={"timeslot_id": new_id()}, headers=minter.headers(new_id(), "patient")
        )
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "scheduling_unavailable"
    assert "127.0.0.1" not in response.text
    assert count_appointments(app) == 0


@pytest.mark.parametrize("role", ["doctor", "admin"])
def test_only_patients_book(client, scheduling, new_id, callers, role):
    response = client.post(
        "/api/appointments/", json={"timeslot_id": new_id()}, headers=callers(role, new_id()).headers
    )
    assert response.status_code == 403
    assert scheduling.holds == []


def test_booking_needs_a_token(client):
    response = client.post("/api/appointments/", json={"timeslot_id": 1})
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"timeslot_id": "abc"},
        {"timeslot_id": 0},
        {"timeslot_id": -3},
        {"timeslot_id": True},
        {"timeslot_id": 2**63},
        {"timeslot_id": 1, "reason": "x" * 501},
        {"timeslot_id": 1, "reason": 5},
    ],
)
def test_an_invalid_booking_request_is_a_422_with_the_offending_field(
    client, scheduling, new_id, callers, body
):
    response = client.post("/api/appointments/", json=body, headers=callers("patient", new_id()).headers)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] in {"timeslot_id", "reason"}
    assert scheduling.holds == []


def test_a_body_that_is_not_json_is_a_400(client, new_id, callers):
    response = client.post(
        "/api/appointments/",
        content=b"{not json",
        headers={**callers("patient", new_id()).headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 400


def test_the_path_without_a_trailing_slash_works_too(client, scheduling, new_id, callers):
    slot = new_id()
    scheduling.add_timeslot(slot, new_id())
    response = client.post(
        "/api/appointments", json={"timeslot_id": slot}, headers=callers("patient", new_id()).headers
    )
    assert response.status_code == 201
