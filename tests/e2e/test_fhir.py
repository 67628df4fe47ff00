"""FHIR R4 through the gateway, as another health system's client sees it (spec/API.md "FHIR R4").

Every answer is parsed with ``fhir.resources`` (R4B), the resource type it names picking the
model: each resource, each Bundle entry and each error (OperationOutcome) validates against
the FHIR definitions, and a response that does not fails the test.
"""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.resource import Resource

from .api import User, new_user
from .stack import Stack, wait_until
from .test_appointments import EVENT_DEADLINE, free_timeslot_ids, new_timeslot, set_status
from .test_booking_race import register_patients

FHIR_JSON = "application/fhir+json"


def fhir(response: httpx.Response, status: int = 200) -> Resource:
    """The FHIR resource of ``response``, which must have ``status``, validated by its own model."""
    assert response.status_code == status, f"expected {status}, got {response.status_code}: {response.text}"
    assert response.headers["content-type"].startswith(FHIR_JSON), response.headers
    data = response.json()
    resource = get_fhir_model_class(data["resourceType"]).model_validate(data)
    if isinstance(resource, Bundle):
        for entry in resource.entry or []:
            # Each entry's resource by its own model, not only as a generic Resource.
            model = get_fhir_model_class(entry.resource.get_resource_type())
            model.model_validate(entry.resource.model_dump(mode="json"))
    return resource


def outcome(response: httpx.Response, status: int) -> OperationOutcome:
    resource = fhir(response, status)
    assert isinstance(resource, OperationOutcome), resource
    assert resource.issue[0].severity == "error"
    assert resource.issue[0].diagnostics
    return resource


def problem_code(parsed: OperationOutcome) -> str | None:
    coding = parsed.issue[0].details.coding if parsed.issue[0].details else None
    return coding[0].code if coding else None


def next_url(bundle: Bundle) -> str | None:
    return next((link.url for link in bundle.link or [] if link.relation == "next"), None)


def booking(slot_id: int | str, patient_id: int, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Appointment",
        "status": "booked",
        "slot": [{"reference": f"Slot/{slot_id}"}],
        "participant": [{"actor": {"reference": f"Patient/{patient_id}"}, "status": "accepted"}],
        **extra,
    }


def post_appointment(client: httpx.Client, body: Any) -> httpx.Response:
    return client.post("/fhir/Appointment", json=body, headers={"Content-Type": FHIR_JSON})


def fhir_client(stack: Stack, user: User | None = None) -> httpx.Client:
    return stack.client(user.access if user else None, headers={"Accept": FHIR_JSON})


def test_the_capability_statement_is_public_and_lists_every_resource_of_every_service(stack):
    with fhir_client(stack) as client:
        statement = fhir(client.get("/fhir/metadata"))

    assert isinstance(statement, CapabilityStatement)
    assert statement.fhirVersion == "4.3.0"
    assert statement.format == ["json"]
    assert statement.implementation.url == f"{stack.base_url}/fhir"
    resources = {r.type: r for r in statement.rest[0].resource}
    assert set(resources) == {"Practitioner", "Schedule", "Slot", "Appointment"}
    assert {i.code for i in resources["Appointment"].interaction} == {"read", "search-type", "create"}
    assert {p.name for p in resources["Slot"].searchParam} == {"schedule", "start", "status"}
    # The main stack lets a browser front end on another origin call it (CORS_ALLOWED_ORIGINS).
    assert statement.rest[0].security.cors is True


def test_a_patient_finds_a_doctor_a_free_slot_and_books_it_through_fhir(stack, patient):
    surname = f"Quokka{uuid.uuid4().hex[:8]}"
    doctor = new_user(stack, "doctor", full_name=f"Dora {surname}")
    slot = new_timeslot(stack, doctor)
    with fhir_client(stack, patient) as client:

        def listed() -> Bundle | None:
            # doctor-service hears of the new doctor by identity's event: within a second or so.
            found = fhir(client.get("/fhir/Practitioner", params={"name": surname.lower()}))
            return found if found.total else None

        found = wait_until(listed, timeout=EVENT_DEADLINE, what="the doctor listed as a Practitioner")
        assert [e.resource.id for e in found.entry] == [str(doctor.id)]
        practitioner = fhir(client.get(f"/fhir/Practitioner/{doctor.id}"))
        assert practitioner.name[0].text == f"Dora {surname}"
        schedule = fhir(client.get(f"/fhir/Schedule/{doctor.id}"))
        assert schedule.actor[0].reference == f"Practitioner/{doctor.id}"
        free = fhir(client.get("/fhir/Slot", params={"schedule": f"Schedule/{doctor.id}", "status": "free"}))
        assert [e.resource.id for e in free.entry] == [str(slot["id"])]

        response = post_appointment(client, booking(slot["id"], patient.id, reasonCode=[{"text": "Cough"}]))
        made = fhir(response, 201)
        assert made.status == "pending"
        assert response.headers["location"] == f"{stack.base_url}/fhir/Appointment/{made.id}"
        assert fhir(client.get(response.headers["location"])) == made
        mine = fhir(client.get("/fhir/Appointment", params={"patient": f"Patient/{patient.id}"}))
        assert [e.resource.id for e in mine.entry] == [made.id]
        busy = fhir(client.get(f"/fhir/Slot/{slot['id']}"))
        assert busy.status == "busy"

    # The same appointment in the REST API, under the same single-winner rules.
    assert slot["id"] not in free_timeslot_ids(stack, patient, doctor.id)
    assert set_status(stack, doctor.access, int(made.id), "confirmed").status_code == 200
    with fhir_client(stack, doctor) as client:
        confirmed = fhir(client.get(f"/fhir/Appointment/{made.id}"))
        theirs = fhir(client.get("/fhir/Appointment", params={"practitioner": f"Practitioner/{doctor.id}"}))
    assert confirmed.status == "booked"
    assert [p.actor.reference for p in confirmed.participant] == [
        f"Patient/{patient.id}",
        f"Practitioner/{doctor.id}",
    ]
    assert [e.resource.id for e in theirs.entry] == [made.id]


def test_a_fhir_booking_retried_with_its_idempotency_key_books_once_and_answers_the_same(
    stack, patient, doctor
):
    slot = new_timeslot(stack, doctor)
    key = {"Content-Type": FHIR_JSON, "Idempotency-Key": f"his-{uuid.uuid4()}"}
    with fhir_client(stack, patient) as client:
        first = client.post("/fhir/Appointment", json=booking(slot["id"], patient.id), headers=key)
        # The health system lost the answer and sends the same request again.
        again = client.post("/fhir/Appointment", json=booking(slot["id"], patient.id), headers=key)
        made = fhir(first, 201)
        assert fhir(again, 201) == made
        assert again.headers["idempotent-replayed"] == "true"
        assert again.headers["location"] == first.headers["location"]
        assert first.headers["location"] == f"{stack.base_url}/fhir/Appointment/{made.id}"
        mine = fhir(client.get("/fhir/Appointment", params={"patient": f"Patient/{patient.id}"}))
        assert mine.total == 1

        other = new_timeslot(stack, doctor)
        reused = client.post("/fhir/Appointment", json=booking(other["id"], patient.id), headers=key)
        assert problem_code(outcome(reused, 422)) == "idempotency_key_reused"
    assert other["id"] in free_timeslot_ids(stack, patient, doctor.id)


def test_many_patients_booking_one_slot_through_fhir_get_exactly_one_appointment(stack, doctor):
    patients = register_patients(stack, 20)
    slot = new_timeslot(stack, doctor)
    clients = [fhir_client(stack, p) for p in patients]
    start = threading.Barrier(len(clients))

    def attempt(pair: tuple[httpx.Client, User]) -> int:
        client, patient = pair
        start.wait()
        response = post_appointment(client, booking(slot["id"], patient.id))
        if response.status_code == 201:
            fhir(response, 201)
        else:
            assert outcome(response, 409).issue[0].code == "conflict"
        return response.status_code

    try:
        with ThreadPoolExecutor(max_workers=len(clients)) as pool:
            statuses = sorted(pool.map(attempt, zip(clients, patients, strict=True)))
    finally:
        for client in clients:
            client.close()

    assert statuses == [201] + [409] * (len(patients) - 1)
    with fhir_client(stack, doctor) as client:
        appointments = fhir(
            client.get("/fhir/Appointment", params={"practitioner": f"Practitioner/{doctor.id}"})
        )
    assert appointments.total == 1
    assert appointments.entry[0].resource.slot[0].reference == f"Slot/{slot['id']}"


def test_a_large_schedule_pages_through_every_slot_with_next_links(stack, patient, doctor):
    first_day = (datetime.now(UTC) + timedelta(days=40)).date()
    pattern = {
        "date_from": first_day.isoformat(),
        "date_to": (first_day + timedelta(days=9)).isoformat(),
        "weekdays": list(range(7)),
        "day_start": "08:00",
        "day_end": "20:00",
        "slot_minutes": 30,
    }
    with stack.client(doctor.access) as client:
        response = client.post("/api/timeslots/bulk/", json=pattern)
    assert response.status_code == 201, response.text
    created = response.json()["created"]
    assert len(created) == 240

    starts: list[datetime] = []
    pages = 0
    with fhir_client(stack, patient) as client:
        url: str | None = "/fhir/Slot"
        params: dict[str, Any] | None = {"schedule": f"Schedule/{doctor.id}", "_count": 100}
        while url is not None:
            bundle = fhir(client.get(url, params=params))
            assert bundle.type == "searchset" and bundle.total == 240
            assert all(e.resource.status == "free" for e in bundle.entry)
            starts += [e.resource.start for e in bundle.entry]
            url, params, pages = next_url(bundle), None, pages + 1
        # More than 100 a page is read as 100 (the next link says so); 0 counts only.
        schedule = {"schedule": f"Schedule/{doctor.id}"}
        capped = fhir(client.get("/fhir/Slot", params={**schedule, "_count": 1000}))
        assert (capped.total, len(capped.entry)) == (240, 100)
        assert httpx.URL(next_url(capped)).params["_count"] == "100"
        counted = fhir(client.get("/fhir/Slot", params={**schedule, "_count": 0}))
        assert (counted.total, counted.entry, [link.relation for link in counted.link]) == (
            240,
            None,
            ["self"],
        )
        # A whole month, in the clinic time zone.
        month = fhir(client.get("/fhir/Slot", params={**schedule, "start": first_day.strftime("%Y-%m")}))
        days_in_month = sum((first_day + timedelta(days=n)).month == first_day.month for n in range(10))
        assert month.total == 24 * days_in_month
        # A window of the schedule, by start time.
        day = (first_day + timedelta(days=1)).isoformat()
        window = fhir(
            client.get(
                "/fhir/Slot", params={"schedule": str(doctor.id), "start": [f"ge{day}", f"lt{day}T12:00:00"]}
            )
        )
    assert pages == 3
    assert len(starts) == 240 and starts == sorted(starts) and len(set(starts)) == 240
    assert window.total == 8  # 08:00 to 12:00 in half hours, both in the clinic time zone


@pytest.fixture(scope="module")
def booked_elsewhere(stack: Stack) -> dict[str, Any]:
    """A slot another patient already has."""
    doctor = new_user(stack, "doctor", full_name="Tessa Taken")
    owner = new_user(stack, "patient")
    slot = new_timeslot(stack, doctor)
    with fhir_client(stack, owner) as client:
        fhir(post_appointment(client, booking(slot["id"], owner.id)), 201)
    return slot


def test_bad_requests_are_operation_outcomes_with_the_contracts_statuses(
    stack, patient, doctor, booked_elsewhere
):
    slot = new_timeslot(stack, doctor)
    with fhir_client(stack, patient) as client:
        malformed = client.post(
            "/fhir/Appointment", content=b'{"resourceType": "Appoint', headers={"Content-Type": FHIR_JSON}
        )
        assert outcome(malformed, 400).issue[0].code == "structure"
        wrong_type = outcome(
            post_appointment(client, {"resourceType": "Patient", "id": str(patient.id)}), 422
        )
        assert wrong_type.issue[1].expression == ["resourceType"]
        no_slot = outcome(post_appointment(client, {**booking(slot["id"], patient.id), "slot": []}), 422)
        assert no_slot.issue[1].expression == ["slot"]
        not_fhir = outcome(
            post_appointment(client, {**booking(slot["id"], patient.id), "priority": "high"}), 422
        )
        assert not_fhir.issue[0].code == "invalid"
        someone_else = outcome(post_appointment(client, booking(slot["id"], patient.id + 1)), 403)
        assert problem_code(someone_else) == "not_your_booking"
        assert (
            outcome(post_appointment(client, booking(999_999_999, patient.id)), 404).issue[0].code
            == "not-found"
        )
        assert problem_code(
            outcome(post_appointment(client, booking(booked_elsewhere["id"], patient.id)), 409)
        ) == ("timeslot_not_available")
        assert outcome(client.get("/fhir/Slot"), 422).issue[0].code == "invalid"
        assert outcome(client.get("/fhir/Slot", params={"schedule": str(doctor.id), "start": "soon"}), 422)
        assert outcome(client.get("/fhir/Appointment/999999999"), 404)
        assert outcome(client.get("/fhir/Patient/1"), 404).issue[0].code == "not-found"
        # An id that is not one of ours names nothing: 404, as an unknown one.
        for path in ("/fhir/Appointment/abc", "/fhir/Practitioner/0", "/fhir/Slot/99999999999999999999"):
            assert outcome(client.get(path), 404).issue[0].code == "not-found", path
        assert outcome(client.get(f"/fhir/Slot/0{slot['id']}"), 404)
        # A search for the slots of nobody finds none.
        nobody = fhir(client.get("/fhir/Slot", params={"schedule": "Schedule/999999999"}))
        assert (nobody.total, nobody.entry) == (0, None)
        # What this server does not understand may change a resource's meaning: refused.
        modifier = [{"url": "http://example.org/fhir/StructureDefinition/not-really", "valueBoolean": True}]
        for changes, element in (
            ({"modifierExtension": modifier}, "modifierExtension"),
            ({"implicitRules": "http://example.org/our-own-rules"}, "implicitRules"),
        ):
            refused = outcome(post_appointment(client, booking(slot["id"], patient.id, **changes)), 422)
            assert refused.issue[1].expression == [element]
    with fhir_client(stack, doctor) as client:
        assert (
            outcome(post_appointment(client, booking(slot["id"], doctor.id)), 403).issue[0].code
            == "forbidden"
        )
        assert outcome(client.get("/fhir/Practitioner"), 403)
    assert slot["id"] in free_timeslot_ids(stack, patient, doctor.id)  # none of it booked anything


def test_without_a_valid_token_the_gateway_answers_a_401_operation_outcome(stack):
    for token in (None, "not.a.token"):
        with stack.client(token) as client:
            response = client.get("/fhir/Appointment")
        assert outcome(response, 401).issue[0].code == "login"
        assert response.headers["www-authenticate"].startswith("Bearer")


def test_the_merged_api_docs_link_the_fhir_endpoints(stack):
    with stack.client() as client:
        description = client.get("/api/schema/openapi.json").json()["info"]["description"]
    assert "[CapabilityStatement at `/fhir/metadata`](/fhir/metadata)" in description
    assert "POST /fhir/Appointment" in description
