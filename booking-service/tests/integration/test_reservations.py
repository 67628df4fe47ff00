"""The internal reservation lookup that scheduling's hold sweeper asks (never routed by the gateway),
and what its answer "none stored" promises: no booking or reschedule stores one afterwards."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, insert, select, text, update

from booking.models import AbandonedReservation, Appointment
from chassis.testkit import lock_waiters, wait_until
from chassis.testkit.http_contracts import checked

from .conftest import count_appointments


def test_a_stored_reservation_answers_its_appointment_and_status(client, seed, new_id, from_scheduling):
    appointment = seed(patient_id=new_id(), doctor_id=new_id(), status="confirmed")
    path = f"/internal/reservations/{appointment.reservation_id}"
    response = checked(client, "booking").get(path, headers=from_scheduling)
    assert response.status_code == 200
    assert response.json() == {
        "reservation_id": str(appointment.reservation_id),
        "appointment_id": appointment.id,
        "status": "confirmed",
        "takes_timeslot": True,
    }


def test_a_cancelled_appointment_reports_its_reservation_as_cancelled_and_its_timeslot_free(
    client, seed, new_id, from_scheduling
):
    appointment = seed(patient_id=new_id(), doctor_id=new_id(), status="cancelled")
    path = f"/internal/reservations/{appointment.reservation_id}"
    body = checked(client, "booking").get(path, headers=from_scheduling).json()
    assert (body["status"], body["takes_timeslot"]) == ("cancelled", False)


def test_an_abandoned_reservation_is_a_404(client, from_scheduling):
    response = checked(client, "booking").get(
        f"/internal/reservations/{uuid.uuid4()}", headers=from_scheduling
    )
    assert response.status_code == 404
    assert response.json()["code"] == "reservation_not_found"


def test_a_reservation_id_that_is_not_a_uuid_is_a_422(client, from_scheduling):
    assert client.get("/internal/reservations/not-a-uuid", headers=from_scheduling).status_code == 422


def test_only_schedulings_service_token_may_ask(client, seed, new_id, callers, minter):
    appointment = seed(patient_id=new_id(), doctor_id=new_id(), status="confirmed")
    path = f"/internal/reservations/{appointment.reservation_id}"
    for headers in (
        {},
        callers("patient", appointment.patient_id).headers,
        callers("admin", new_id()).headers,
    ):
        response = checked(client, "booking").get(path, headers=headers)
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
    other_service = {"Authorization": minter.service_credentials("doctor").authorization("booking")}
    assert client.get(path, headers=other_service).status_code == 403
    wrong_audience = {"Authorization": minter.service_credentials("scheduling").authorization("doctor")}
    assert client.get(path, headers=wrong_audience).status_code == 401


def test_the_internal_lookup_is_not_in_the_public_api_document(client):
    paths = client.get("/api/schema/booking/openapi.json").json()["paths"]
    assert not [p for p in paths if p.startswith("/internal")]
    assert set(paths) == {
        "/api/appointments/",
        "/api/appointments/me/",
        "/api/appointments/{appointment_id}/",
        "/api/appointments/{appointment_id}/status/",
        "/api/waitlist/",
        "/api/waitlist/me/",
        "/api/waitlist/{entry_id}/",
        "/api/calendar/feed/",
        "/api/calendar/feed/rotate/",
        "/api/calendar/feed.ics",
        "/api/appointments/{appointment_id}/reschedule/",
        "/api/appointments/{appointment_id}/history/",
    }


# -- the answer "none stored" stays true (services/reservations.py) ----------------------------


@pytest.fixture
def sweeper(client, scheduling, from_scheduling):
    """``sweeper(timeslot)``: the stand-in's sweeper asks booking about the timeslot's next hold as
    soon as it is granted, before booking stores anything, and frees it on a 404."""

    def ask(reservation_id: str) -> int:
        path = f"/internal/reservations/{reservation_id}"
        return checked(client, "booking").get(path, headers=from_scheduling).status_code

    return lambda timeslot_id: scheduling.sweep_on_hold.__setitem__(timeslot_id, ask)


def test_a_booking_whose_hold_was_swept_before_it_was_stored_is_refused_and_stores_nothing(
    app, client, scheduling, sweeper, new_id, callers
):
    slot = new_id()
    scheduling.add_timeslot(slot, new_id())
    sweeper(slot)

    response = client.post(
        "/api/appointments/", json={"timeslot_id": slot}, headers=callers("patient", new_id()).headers
    )

    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "hold_expired"
    assert count_appointments(app) == 0
    assert scheduling.holder_of(slot) is None
    # A new attempt (the sweeper quiet now) is a new reservation, and books.
    del scheduling.sweep_on_hold[slot]
    retry = client.post(
        "/api/appointments/", json={"timeslot_id": slot}, headers=callers("patient", new_id()).headers
    )
    assert retry.status_code == 201


def test_a_reschedule_whose_new_hold_was_swept_is_refused_and_the_appointment_stays(
    app, client, scheduling, sweeper, seed, new_id, callers
):
    doctor, old_slot, new_slot = new_id(), new_id(), new_id()
    appointment = seed(patient_id=new_id(), doctor_id=doctor, timeslot_id=old_slot)
    scheduling.add_timeslot(new_slot, doctor, starts_in=timedelta(days=2))
    sweeper(new_slot)
    headers = callers("patient", appointment.patient_id).headers

    response = client.post(
        f"/api/appointments/{appointment.id}/reschedule/", json={"timeslot_id": new_slot}, headers=headers
    )

    assert response.status_code == 503
    assert response.json()["code"] == "hold_expired"
    after = client.get(f"/api/appointments/{appointment.id}/", headers=headers).json()
    assert after["timeslot_id"] == old_slot
    with app.state.db.transaction() as session:
        assert session.get(Appointment, appointment.id).reservation_id == appointment.reservation_id


def test_a_lookup_during_the_commit_of_its_appointment_waits_for_it_and_finds_it(
    app, client, from_scheduling, new_id
):
    # The appointment's transaction has reached its commit's check (the deferred trigger, fired
    # here on demand) and holds the reservation's lock: the lookup must wait and then find it,
    # never answer 404 for an appointment about to be stored.
    reservation = uuid.uuid4()
    db = app.state.db
    with ThreadPoolExecutor(max_workers=1) as pool:
        with db.transaction() as storing:
            storing.execute(insert(Appointment), [appointment_row(reservation, new_id())])
            storing.execute(text("SET CONSTRAINTS tr_appointments_reservation_not_abandoned IMMEDIATE"))
            path = f"/internal/reservations/{reservation}"
            lookup = pool.submit(lambda: checked(client, "booking").get(path, headers=from_scheduling))
            wait_until(lambda: lookup.done() or lock_waiters(db), what="the lookup to answer or wait")
        response = lookup.result(timeout=10)
    assert response.status_code == 200
    assert response.json()["reservation_id"] == str(reservation)


def appointment_row(reservation: uuid.UUID, user_id: int) -> dict:
    start = datetime.now(UTC) + timedelta(days=1)
    return {
        "reservation_id": reservation,
        "timeslot_id": user_id,
        "doctor_id": user_id,
        "patient_id": user_id + 1,
        "start_time": start,
        "end_time": start + timedelta(minutes=30),
        "status": "pending",
    }


def test_the_retention_job_forgets_abandoned_reservations_after_a_day(app, client, from_scheduling):
    old, recent = uuid.uuid4(), uuid.uuid4()
    for reservation in (old, recent):
        response = client.get(f"/internal/reservations/{reservation}", headers=from_scheduling)
        assert response.status_code == 404
    with app.state.db.transaction() as session:
        session.execute(
            update(AbandonedReservation)
            .where(AbandonedReservation.reservation_id == old)
            .values(abandoned_at=func.now() - timedelta(hours=25))
        )
    assert app.state.retention.run_once()["abandoned reservations"] == 1
    with app.state.db.transaction() as session:
        assert session.scalars(select(AbandonedReservation.reservation_id)).all() == [recent]
