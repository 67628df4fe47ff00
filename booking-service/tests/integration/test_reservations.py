"""The internal reservation lookup that scheduling's hold sweeper asks (never routed by the gateway)."""

from __future__ import annotations

import uuid

from chassis.testkit.http_contracts import checked


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
