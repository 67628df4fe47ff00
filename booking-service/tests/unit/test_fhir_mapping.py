"""Appointments as FHIR Appointments, and posted Appointments as booking requests (booking.fhir)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.exceptions import RequestValidationError
from fhir.resources.R4B.appointment import Appointment

from booking.domain import AppointmentStatus
from booking.fhir import BookingRequest, appointment_of, booking_request
from booking.queries import AppointmentView

START = datetime(2030, 3, 4, 9, 0, tzinfo=UTC)


def view(status: str = "pending", **fields) -> AppointmentView:
    values = {
        "id": 11,
        "timeslot_id": 22,
        "doctor_id": 7,
        "patient_id": 5,
        "doctor_name": "Dora Doctor",
        "patient_name": "Pat Patient",
        "start_time": START,
        "end_time": START + timedelta(minutes=30),
        "status": status,
        "reason": "Back pain",
        "cancellation_reason": None,
        "created_at": START - timedelta(days=1),
        "updated_at": START - timedelta(hours=1),
        **fields,
    }
    return AppointmentView(**values)


@pytest.mark.parametrize(
    ("status", "fhir_status"),
    [("pending", "pending"), ("confirmed", "booked"), ("cancelled", "cancelled"),
     ("completed", "fulfilled"), ("no_show", "noshow")],
)  # fmt: skip
def test_every_status_maps_as_the_contract_says(status, fhir_status):
    assert appointment_of(view(status)).status == fhir_status


def test_an_appointment_names_its_slot_patient_and_doctor_and_validates_as_fhir():
    resource = appointment_of(view("confirmed"))
    data = resource.model_dump(mode="json")

    assert Appointment.model_validate(data) == resource
    assert data["id"] == "11"
    assert data["slot"] == [{"reference": "Slot/22"}]
    assert data["start"] == "2030-03-04T09:00:00Z"
    assert [(p["actor"]["reference"], p["actor"]["display"], p["status"]) for p in data["participant"]] == [
        ("Patient/5", "Pat Patient", "accepted"),
        ("Practitioner/7", "Dora Doctor", "accepted"),
    ]
    assert data["reasonCode"] == [{"text": "Back pain"}]


def test_a_pending_appointment_waits_for_the_doctor_and_a_cancelled_one_says_why():
    pending = appointment_of(view("pending"))
    assert pending.participant[1].status == "needs-action"
    cancelled = appointment_of(view("cancelled", cancellation_reason="The doctor is ill."))
    assert cancelled.cancelationReason.text == "The doctor is ill."


def test_unknown_names_are_left_out_rather_than_empty():
    data = appointment_of(view(doctor_name="", patient_name="", reason="")).model_dump(mode="json")
    assert all("display" not in p["actor"] for p in data["participant"])
    assert "reasonCode" not in data


def booking(**changes) -> dict:
    body = {
        "resourceType": "Appointment",
        "status": "booked",
        "slot": [{"reference": "Slot/22"}],
        "participant": [
            {"actor": {"reference": "Patient/5"}, "status": "accepted"},
            {"actor": {"reference": "Practitioner/7"}, "status": "needs-action"},
        ],
        "reasonCode": [{"text": "Back pain"}],
    }
    body.update(changes)
    return {key: value for key, value in body.items() if value is not None}


def test_a_posted_appointment_asks_for_its_slot_for_its_patient():
    assert booking_request(booking()) == BookingRequest(timeslot_id=22, patient_id=5, reason="Back pain")
    absolute = booking(slot=[{"reference": "https://clinic.example/fhir/Slot/22"}], reasonCode=None)
    assert booking_request(absolute) == BookingRequest(timeslot_id=22, patient_id=5, reason=None)


def field_errors(body) -> list[tuple[str, ...]]:
    with pytest.raises(RequestValidationError) as raised:
        booking_request(body)
    return [tuple(str(part) for part in error["loc"][1:]) for error in raised.value.errors()]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"resourceType": "Patient", "id": "5"}, "resourceType"),
        (["not", "a", "resource"], "resourceType"),
        (booking(status="proposed"), "status"),
        (booking(slot=None), "slot"),
        (booking(slot=[]), "slot"),
        (booking(slot=[{"reference": "Slot/1"}, {"reference": "Slot/2"}]), "slot"),
        (booking(slot=[{"reference": "Schedule/7"}]), "slot"),
        (booking(slot=[{"display": "no reference"}]), "slot"),
        (
            booking(participant=[{"actor": {"reference": "Practitioner/7"}, "status": "accepted"}]),
            "participant",
        ),
        (booking(participant=[{"actor": {"reference": "Patient/x"}, "status": "accepted"}]), "participant"),
        (booking(reasonCode=[{"text": "x" * 5000}]), "reasonCode"),
    ],
)
def test_a_posted_appointment_that_cannot_book_names_the_element_at_fault(body, field):
    assert field_errors(body)[0][0] == field


def test_a_resource_that_breaks_the_fhir_definitions_is_refused_with_its_path():
    errors = field_errors(booking(participant=[{"actor": {"reference": "Patient/5"}}], unknown=1))
    assert ("unknown",) in errors


def test_every_status_of_the_domain_has_a_fhir_status():
    assert {appointment_of(view(s.value)).status for s in AppointmentStatus} == {
        "pending", "booked", "cancelled", "fulfilled", "noshow",
    }  # fmt: skip
