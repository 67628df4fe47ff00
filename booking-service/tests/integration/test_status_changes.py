"""Changing an appointment's status (PATCH .../status/) and cancelling it (DELETE)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import pytest

from chassis.testkit import wait_until

PAST = -timedelta(hours=1)


@pytest.fixture
def people(new_id):
    return {"patient": new_id(), "doctor": new_id(), "admin": new_id()}


def patch_status(client, appointment_id, headers, status, **extra):
    return client.patch(
        f"/api/appointments/{appointment_id}/status/", json={"status": status, **extra}, headers=headers
    )


@pytest.mark.parametrize("role", ["doctor", "admin"])
def test_its_doctor_or_an_admin_confirms_a_pending_appointment(client, seed, callers, people, role):
    appointment = seed(patient_id=people["patient"], doctor_id=people["doctor"])
    response = patch_status(client, appointment.id, callers(role, people[role]).headers, "confirmed")
    assert response.status_code == 200
    assert response.json()["status"] == "confirmed"
    body = response.json()
    assert datetime.fromisoformat(body["updated_at"]) > datetime.fromisoformat(body["created_at"])


@pytest.mark.parametrize("status", ["completed", "no_show"])
def test_a_confirmed_appointment_that_has_started_is_completed_or_marked_no_show(
    client, seed, callers, people, status
):
    appointment = seed(
        patient_id=people["patient"], doctor_id=people["doctor"], status="confirmed", starts_in=PAST
    )
    response = patch_status(client, appointment.id, callers("doctor", people["doctor"]).headers, status)
    assert response.status_code == 200
    assert response.json()["status"] == status


def test_completing_an_appointment_before_it_starts_is_a_409(client, seed, callers, people):
    appointment = seed(patient_id=people["patient"], doctor_id=people["doctor"], status="confirmed")
    response = patch_status(client, appointment.id, callers("doctor", people["doctor"]).headers, "completed")
    assert response.status_code == 409
    assert response.json()["code"] == "appointment_not_started"


@pytest.mark.parametrize(
    ("current", "new"),
    [
        ("pending", "completed"),
        ("pending", "no_show"),
        ("pending", "pending"),
        ("confirmed", "pending"),
        ("cancelled", "confirmed"),
        ("completed", "cancelled"),
        ("no_show", "completed"),
    ],
)
def test_an_illegal_status_change_is_a_409_and_changes_nothing(client, seed, callers, people, current, new):
    appointment = seed(
        patient_id=people["patient"], doctor_id=people["doctor"], status=current, starts_in=PAST
    )
    headers = callers("admin", people["admin"]).headers
    response = patch_status(client, appointment.id, headers, new)
    assert response.status_code == 409
    assert response.json()["code"] == "illegal_status_change"
    assert client.get(f"/api/appointments/{appointment.id}/", headers=headers).json()["status"] == current


def test_a_doctor_cancels_with_a_reason_and_the_cancellation_is_announced(
    client, seed, callers, people, broker
):
    appointment = seed(patient_id=people["patient"], doctor_id=people["doctor"], status="confirmed")
    response = patch_status(
        client,
        appointment.id,
        callers("doctor", people["doctor"]).headers,
        "cancelled",
        cancellation_reason="Doctor is ill",
    )
    assert response.status_code == 200
    assert response.json()["cancellation_reason"] == "Doctor is ill"
    [event] = wait_until(
        lambda: broker.published("booking.appointment.cancelled", appointment_id=appointment.id)
    )
    assert event["data"]["cancelled_by"] == "doctor"
    assert event["data"]["previous_status"] == "confirmed"
    assert event["data"]["cancellation_reason"] == "Doctor is ill"
    assert event["data"]["reservation_id"] == str(appointment.reservation_id)


def test_a_confirmation_is_announced_as_a_status_change(client, seed, callers, people, broker):
    appointment = seed(patient_id=people["patient"], doctor_id=people["doctor"])
    patch_status(client, appointment.id, callers("admin", people["admin"]).headers, "confirmed")
    [event] = wait_until(
        lambda: broker.published("booking.appointment.status_changed", appointment_id=appointment.id)
    )
    assert (event["data"]["previous_status"], event["data"]["status"]) == ("pending", "confirmed")


def test_patients_cannot_change_statuses(client, seed, callers, people):
    appointment = seed(patient_id=people["patient"], doctor_id=people["doctor"])
    assert (
        patch_status(
            client, appointment.id, callers("patient", people["patient"]).headers, "confirmed"
        ).status_code
        == 403
    )


def test_another_doctor_cannot_even_see_the_appointment(client, seed, callers, people, new_id):
    appointment = seed(patient_id=people["patient"], doctor_id=people["doctor"])
    assert (
        patch_status(client, appointment.id, callers("doctor", new_id()).headers, "confirmed").status_code
        == 404
    )


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"status": "done"},
        {"status": "confirmed", "cancellation_reason": "why"},
        {"status": "cancelled", "cancellation_reason": "x" * 501},
    ],
)
def test_an_invalid_status_change_request_is_a_422(client, seed, callers, people, body):
    appointment = seed(patient_id=people["patient"], doctor_id=people["doctor"])
    response = client.patch(
        f"/api/appointments/{appointment.id}/status/",
        json=body,
        headers=callers("admin", people["admin"]).headers,
    )
    assert response.status_code == 422


def test_concurrent_changes_of_one_appointment_apply_exactly_once(client, seed, callers, people, broker):
    appointment = seed(patient_id=people["patient"], doctor_id=people["doctor"])
    headers = callers("doctor", people["doctor"]).headers

    with ThreadPoolExecutor(max_workers=10) as pool:
        statuses = list(
            pool.map(
                lambda _: patch_status(client, appointment.id, headers, "cancelled").status_code, range(10)
            )
        )

    assert sorted(statuses) == [200] + [409] * 9
    wait_until(lambda: broker.published("booking.appointment.cancelled", appointment_id=appointment.id))
    assert len(broker.published("booking.appointment.cancelled", appointment_id=appointment.id)) == 1


@pytest.mark.parametrize(("role", "cancelled_by"), [("patient", "patient"), ("admin", "admin")])
def test_its_patient_or_an_admin_cancels_with_delete_and_the_record_stays(
    client, seed, callers, people, broker, role, cancelled_by
):
    appointment = seed(patient_id=people["patient"], doctor_id=people["doctor"], status="confirmed")
    response = client.delete(
        f"/api/appointments/{appointment.id}/", headers=callers(role, people[role]).headers
    )
    assert response.status_code == 204
    assert response.content == b""
    kept = client.get(
        f"/api/appointments/{appointment.id}/", headers=callers("patient", people["patient"]).headers
    ).json()
    assert kept["status"] == "cancelled"
    [event] = wait_until(
        lambda: broker.published("booking.appointment.cancelled", appointment_id=appointment.id)
    )
    assert event["data"]["cancelled_by"] == cancelled_by
    assert event["data"]["cancellation_reason"] is None


def test_doctors_cannot_cancel_with_delete(client, seed, callers, people):
    appointment = seed(patient_id=people["patient"], doctor_id=people["doctor"])
    assert (
        client.delete(
            f"/api/appointments/{appointment.id}/", headers=callers("doctor", people["doctor"]).headers
        ).status_code
        == 403
    )


def test_another_patient_cannot_cancel_and_learns_nothing(client, seed, callers, people, new_id):
    appointment = seed(patient_id=people["patient"], doctor_id=people["doctor"])
    response = client.delete(
        f"/api/appointments/{appointment.id}/", headers=callers("patient", new_id()).headers
    )
    assert response.status_code == 404
    owner = callers("patient", people["patient"]).headers
    assert client.get(f"/api/appointments/{appointment.id}/", headers=owner).json()["status"] == "pending"


@pytest.mark.parametrize("status", ["cancelled", "completed", "no_show"])
def test_an_appointment_that_is_no_longer_active_cannot_be_cancelled(client, seed, callers, people, status):
    appointment = seed(
        patient_id=people["patient"], doctor_id=people["doctor"], status=status, starts_in=PAST
    )
    response = client.delete(
        f"/api/appointments/{appointment.id}/", headers=callers("patient", people["patient"]).headers
    )
    assert response.status_code == 409


def test_an_appointment_that_has_started_cannot_be_cancelled_by_its_patient(client, seed, callers, people):
    appointment = seed(
        patient_id=people["patient"], doctor_id=people["doctor"], status="confirmed", starts_in=PAST
    )
    response = client.delete(
        f"/api/appointments/{appointment.id}/", headers=callers("patient", people["patient"]).headers
    )
    assert response.status_code == 409
    assert response.json()["code"] == "appointment_started"


def test_cancelling_twice_is_a_409_the_second_time(client, seed, callers, people):
    appointment = seed(patient_id=people["patient"], doctor_id=people["doctor"])
    headers = callers("patient", people["patient"]).headers
    assert client.delete(f"/api/appointments/{appointment.id}/", headers=headers).status_code == 204
    assert client.delete(f"/api/appointments/{appointment.id}/", headers=headers).status_code == 409
