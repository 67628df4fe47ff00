"""Appointments over FHIR (/fhir/Appointment): the same booking use case, rules and access as REST,
every answer a FHIR resource (application/fhir+json) and every error an OperationOutcome."""

from __future__ import annotations

from fhir.resources.R4B.appointment import Appointment
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.operationoutcome import OperationOutcome

FHIR_JSON = "application/fhir+json"


def booking(slot: int, patient: int, **extra) -> dict:
    return {
        "resourceType": "Appointment",
        "status": "booked",
        "slot": [{"reference": f"Slot/{slot}"}],
        "participant": [{"actor": {"reference": f"Patient/{patient}"}, "status": "accepted"}],
        **extra,
    }


def outcome(response, status: int) -> OperationOutcome:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(FHIR_JSON)
    parsed = OperationOutcome.model_validate_json(response.content)
    assert parsed.issue[0].severity == "error"
    return parsed


def code_of(parsed: OperationOutcome) -> str | None:
    coding = parsed.issue[0].details.coding
    return coding[0].code if coding else None


def post(client, body, headers, **kwargs):
    return client.post(
        "/fhir/Appointment", json=body, headers={**headers, "Content-Type": FHIR_JSON}, **kwargs
    )


def test_a_patient_books_through_fhir_and_gets_a_pending_appointment_with_its_location(
    client, scheduling, new_id, callers
):
    patient, doctor, slot = new_id(), new_id(), new_id()
    scheduling.add_timeslot(slot, doctor)

    response = post(
        client,
        booking(slot, patient, reasonCode=[{"text": "Back pain"}]),
        callers("patient", patient).headers,
    )

    assert response.status_code == 201, response.text
    assert response.headers["content-type"].startswith(FHIR_JSON)
    made = Appointment.model_validate_json(response.content)
    assert made.status == "pending"
    assert response.headers["location"] == f"http://testserver/fhir/Appointment/{made.id}"
    assert [p.actor.reference for p in made.participant] == [f"Patient/{patient}", f"Practitioner/{doctor}"]
    assert made.slot[0].reference == f"Slot/{slot}"
    # The same appointment the REST API shows.
    rest = client.get(f"/api/appointments/{made.id}/", headers=callers("patient", patient).headers).json()
    assert (rest["timeslot_id"], rest["status"], rest["reason"]) == (slot, "pending", "Back pain")
    read = client.get(f"/fhir/Appointment/{made.id}", headers=callers("doctor", doctor).headers)
    assert Appointment.model_validate_json(read.content) == made


def test_a_booking_retried_with_its_idempotency_key_is_answered_again_and_booked_once(
    client, scheduling, new_id, callers
):
    patient, slot = new_id(), new_id()
    scheduling.add_timeslot(slot, new_id())
    headers = {**callers("patient", patient).headers, "Idempotency-Key": "fhir-retry-1"}

    first = post(client, booking(slot, patient), headers)
    again = post(client, booking(slot, patient), headers)

    assert first.status_code == again.status_code == 201, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["content-type"].startswith(FHIR_JSON)
    assert again.content == first.content  # the first answer, byte for byte
    made = Appointment.model_validate_json(again.content)
    location = f"http://testserver/fhir/Appointment/{made.id}"
    assert again.headers["location"] == first.headers["location"] == location
    assert len(scheduling.holds) == 1
    search = f"/fhir/Appointment?patient=Patient/{patient}"
    mine = client.get(search, headers=callers("patient", patient).headers)
    assert Bundle.model_validate_json(mine.content).total == 1


def test_an_idempotency_key_reused_for_another_booking_is_a_422_and_a_refusal_is_replayed(
    client, scheduling, new_id, callers
):
    patient, taker, slot, other_slot = new_id(), new_id(), new_id(), new_id()
    scheduling.add_timeslot(slot, new_id())
    scheduling.add_timeslot(other_slot, new_id())
    headers = {**callers("patient", patient).headers, "Idempotency-Key": "fhir-retry-2"}
    assert post(client, booking(slot, patient), headers).status_code == 201

    reused = outcome(post(client, booking(other_slot, patient), headers), 422)
    assert code_of(reused) == "idempotency_key_reused"
    assert len(scheduling.holds) == 1

    # A refusal (the slot taken) is stored too: its retry gets the same OperationOutcome.
    assert post(client, booking(other_slot, taker), callers("patient", taker).headers).status_code == 201
    late = {**headers, "Idempotency-Key": "fhir-retry-3"}
    refused = post(client, booking(other_slot, patient), late)
    again = post(client, booking(other_slot, patient), late)
    assert code_of(outcome(refused, 409)) == code_of(outcome(again, 409)) == "timeslot_not_available"
    assert again.headers["Idempotent-Replayed"] == "true"


def test_a_taken_slot_is_a_409_operation_outcome_and_a_missing_one_404(client, scheduling, new_id, callers):
    first, second, slot = new_id(), new_id(), new_id()
    scheduling.add_timeslot(slot, new_id())
    assert post(client, booking(slot, first), callers("patient", first).headers).status_code == 201

    taken = outcome(post(client, booking(slot, second), callers("patient", second).headers), 409)
    assert taken.issue[0].code == "conflict"
    assert code_of(taken) == "timeslot_not_available"
    missing = outcome(post(client, booking(new_id(), second), callers("patient", second).headers), 404)
    assert missing.issue[0].code == "not-found"


def test_booking_for_someone_else_or_as_a_doctor_is_forbidden(client, scheduling, new_id, callers):
    patient, other, doctor, slot = new_id(), new_id(), new_id(), new_id()
    scheduling.add_timeslot(slot, doctor)

    assert (
        code_of(outcome(post(client, booking(slot, other), callers("patient", patient).headers), 403))
        == "not_your_booking"
    )
    assert (
        outcome(post(client, booking(slot, doctor), callers("doctor", doctor).headers), 403).issue[0].code
        == "forbidden"
    )
    assert scheduling.holds == []


def test_bad_bodies_are_operation_outcomes_never_500(client, scheduling, new_id, callers):
    patient, slot = new_id(), new_id()
    scheduling.add_timeslot(slot, new_id())
    headers = {**callers("patient", patient).headers, "Content-Type": FHIR_JSON}

    malformed = client.post("/fhir/Appointment", content=b'{"resourceType": "Appoint', headers=headers)
    assert outcome(malformed, 400).issue[0].code == "structure"
    wrong_type = outcome(post(client, {"resourceType": "Patient", "id": "1"}, headers), 422)
    assert wrong_type.issue[1].expression == ["resourceType"]
    no_slot = outcome(post(client, {**booking(slot, patient), "slot": []}, headers), 422)
    assert no_slot.issue[1].expression == ["slot"]
    not_fhir = outcome(post(client, {**booking(slot, patient), "colour": "blue"}, headers), 422)
    assert not_fhir.issue[0].code == "invalid"
    assert outcome(client.post("/fhir/Appointment", content=b"[1]", headers=headers), 422)
    assert scheduling.holds == []


def test_without_a_token_the_answer_is_a_401_operation_outcome(client):
    response = client.get("/fhir/Appointment")
    assert outcome(response, 401).issue[0].code == "login"
    assert response.headers["www-authenticate"] == "Bearer"


def test_a_search_shows_only_what_the_caller_may_see_in_a_paged_searchset(client, seed, new_id, callers):
    patient, other, doctor = new_id(), new_id(), new_id()
    mine = [
        seed(patient_id=patient, doctor_id=doctor, status=s).id for s in ("pending", "confirmed", "cancelled")
    ]
    seed(patient_id=other, doctor_id=doctor)

    page = client.get("/fhir/Appointment", params={"_count": 2}, headers=callers("patient", patient).headers)
    bundle = Bundle.model_validate_json(page.content)
    assert (bundle.type, bundle.total, len(bundle.entry)) == ("searchset", 3, 2)
    [next_link] = [link.url for link in bundle.link if link.relation == "next"]
    rest = Bundle.model_validate_json(
        client.get(next_link, headers=callers("patient", patient).headers).content
    )
    ids = {int(e.resource.id) for e in bundle.entry + rest.entry}
    assert ids == set(mine)
    assert not [link for link in rest.link if link.relation == "next"]

    # Another patient's appointments are not the caller's to see: an empty searchset.
    theirs = client.get(
        "/fhir/Appointment",
        params={"patient": f"Patient/{other}"},
        headers=callers("patient", patient).headers,
    )
    assert Bundle.model_validate_json(theirs.content).total == 0
    booked = client.get(
        "/fhir/Appointment",
        params={"practitioner": f"Practitioner/{doctor}", "status": "booked"},
        headers=callers("doctor", doctor).headers,
    )
    [entry] = Bundle.model_validate_json(booked.content).entry
    assert entry.resource.status == "booked"
    assert entry.fullUrl == f"http://testserver/fhir/Appointment/{entry.resource.id}"
    admin = client.get(
        "/fhir/Appointment", params={"patient": str(other)}, headers=callers("admin", new_id()).headers
    )
    assert Bundle.model_validate_json(admin.content).total == 1


def test_invalid_search_parameters_and_unseen_appointments(client, seed, new_id, callers):
    patient = new_id()
    theirs = seed(patient_id=new_id(), doctor_id=new_id())
    headers = callers("patient", patient).headers

    assert outcome(client.get("/fhir/Appointment", params={"status": "confirmed"}, headers=headers), 422)
    assert outcome(client.get("/fhir/Appointment", params={"patient": "Doctor/3"}, headers=headers), 422)
    assert outcome(client.get("/fhir/Appointment", params={"_count": -1}, headers=headers), 422)
    assert outcome(client.get("/fhir/Appointment", params={"status": "|booked"}, headers=headers), 422)
    assert outcome(client.get(f"/fhir/Appointment/{theirs.id}", headers=headers), 404)
    assert outcome(client.get("/fhir/Nothing", headers=headers), 404)


def test_a_read_of_an_id_that_is_not_one_of_ours_is_a_404_not_a_422(client, seed, new_id, callers):
    patient = new_id()
    mine = seed(patient_id=patient, doctor_id=new_id())
    headers = callers("patient", patient).headers
    assert client.get(f"/fhir/Appointment/{mine.id}", headers=headers).status_code == 200

    for path in (f"00{mine.id}", "abc", "0", "-1", "1.5", "99999999999999999999", "9223372036854775808"):
        parsed = outcome(client.get(f"/fhir/Appointment/{path}", headers=headers), 404)
        assert (parsed.issue[0].code, code_of(parsed)) == ("not-found", "appointment_not_found"), path


def test_a_search_by_a_reference_to_an_id_that_cannot_be_ours_finds_nothing(client, seed, new_id, callers):
    # Practitioner/007 is not Practitioner/7 (a read of it is a 404): no appointment references it.
    patient, doctor = new_id(), new_id()
    seed(patient_id=patient, doctor_id=doctor)
    headers = callers("patient", patient).headers

    def total(**params):
        return Bundle.model_validate_json(
            client.get("/fhir/Appointment", params=params, headers=headers).content
        ).total

    assert total(practitioner=f"Practitioner/{doctor}") == 1
    for reference in (f"Practitioner/00{doctor}", "Practitioner/abc", "Practitioner/0"):
        assert total(practitioner=reference) == 0, reference
    assert total(patient=f"Patient/00{patient}") == 0


def test_count_0_counts_only_and_a_count_above_100_is_read_as_100(client, seed, new_id, callers):
    patient = new_id()
    for _ in range(3):
        seed(patient_id=patient, doctor_id=new_id())
    headers = callers("patient", patient).headers

    counted = client.get("/fhir/Appointment", params={"_count": 0}, headers=headers)
    assert counted.status_code == 200, counted.text
    bundle = Bundle.model_validate_json(counted.content)
    assert (bundle.total, bundle.entry, [link.relation for link in bundle.link]) == (3, None, ["self"])
    capped = client.get("/fhir/Appointment", params={"_count": 1000}, headers=headers)
    assert capped.status_code == 200, capped.text
    assert len(Bundle.model_validate_json(capped.content).entry) == 3


MODIFIER = [{"url": "http://example.org/fhir/StructureDefinition/not-really", "valueBoolean": True}]


def test_a_booking_with_rules_or_modifier_extensions_it_does_not_understand_is_refused(
    client, scheduling, new_id, callers
):
    patient, slot = new_id(), new_id()
    scheduling.add_timeslot(slot, new_id())
    headers = callers("patient", patient).headers
    plain = booking(slot, patient)
    participant, slot_reference = plain["participant"][0], plain["slot"][0]

    for changes, element in (
        ({"modifierExtension": MODIFIER}, "modifierExtension"),
        ({"implicitRules": "http://example.org/our-own-rules"}, "implicitRules"),
        (
            {"participant": [{**participant, "modifierExtension": MODIFIER}]},
            "participant.0.modifierExtension",
        ),
        ({"slot": [{**slot_reference, "modifierExtension": MODIFIER}]}, "slot.0.modifierExtension"),
    ):
        refused = outcome(post(client, {**plain, **changes}, headers), 422)
        assert refused.issue[0].code == "invalid"
        assert [issue.expression for issue in refused.issue[1:]] == [[element]], element
    assert scheduling.holds == []
    # A plain extension changes nothing a server must understand: booked.
    extension = [{"url": "http://example.org/fhir/StructureDefinition/colour", "valueString": "blue"}]
    assert post(client, {**plain, "extension": extension}, headers).status_code == 201


def test_status_searches_take_the_code_with_its_system_or_every_status(client, seed, new_id, callers):
    patient = new_id()
    pending = seed(patient_id=patient, doctor_id=new_id(), status="pending")
    confirmed = seed(patient_id=patient, doctor_id=new_id(), status="confirmed")
    seed(patient_id=patient, doctor_id=new_id(), status="cancelled")
    headers = callers("patient", patient).headers

    def search(status: str) -> Bundle:
        response = client.get("/fhir/Appointment", params={"status": status}, headers=headers)
        assert response.status_code == 200, response.text
        return Bundle.model_validate_json(response.content)

    booked = search("http://hl7.org/fhir/appointmentstatus|booked")
    assert [e.resource.id for e in booked.entry] == [str(confirmed.id)]
    assert search("booked,booked").total == 1
    active = search("pending,http://hl7.org/fhir/appointmentstatus|booked")  # comma: any of them
    assert sorted(e.resource.id for e in active.entry) == sorted([str(pending.id), str(confirmed.id)])
    assert search("pending,booked,cancelled,fulfilled,noshow").total == 3
    assert search("http://hl7.org/fhir/appointmentstatus|").total == 3
    wrong_system = client.get(
        "/fhir/Appointment", params={"status": "http://hl7.org/fhir/slotstatus|booked"}, headers=headers
    )
    assert outcome(wrong_system, 422)


def test_the_service_describes_its_part_of_the_capability_statement_publicly(client):
    response = client.get("/fhir/metadata")
    assert response.status_code == 200
    statement = response.json()
    assert statement["resourceType"] == "CapabilityStatement"
    assert statement["fhirVersion"] == "4.3.0"
    [resource] = statement["rest"][0]["resource"]
    assert resource["type"] == "Appointment"
    assert {i["code"] for i in resource["interaction"]} == {"read", "search-type", "create"}


HOSTILE_BODIES = [
    None,
    "Appointment",
    12,
    {},
    {"resourceType": None},
    {"resourceType": "Appointment"},
    {"resourceType": "Appointment", "status": "booked", "participant": None},
    {"resourceType": "Appointment", "status": "booked", "participant": [None]},
    {"resourceType": "Appointment", "status": "booked", "slot": "Slot/1", "participant": []},
    {"resourceType": "Appointment", "status": "booked", "slot": [{"reference": "Slot/99999999999999999999"}]},
    {"resourceType": "Appointment", "status": "booked", "slot": [{"reference": "Slot/-1"}]},
    {"resourceType": "Appointment", "status": "booked", "slot": [{"reference": "Slot/1\u0000"}]},
    {"resourceType": "Appointment", "status": ["booked"], "participant": [{"status": "accepted"}]},
    {
        "resourceType": "Appointment",
        "status": "booked",
        "slot": [{"reference": "Slot/1"}],
        "participant": [{"actor": {"reference": "Patient/1"}, "status": "accepted"}],
        "reasonCode": [{"text": "\u0000"}],
        "start": "not a time",
    },
    {"resourceType": "Appointment", "contained": [{"resourceType": "Appointment", "contained": [{}]}]},
]


def test_hostile_bodies_are_4xx_operation_outcomes_never_500(client, new_id, callers):
    headers = {**callers("patient", new_id()).headers, "Content-Type": FHIR_JSON}
    for body in HOSTILE_BODIES:
        response = client.post("/fhir/Appointment", json=body, headers=headers)
        assert 400 <= response.status_code < 500, (body, response.text)
        outcome(response, response.status_code)
    for query in ({"patient": "Patient/\u0000"}, {"practitioner": "x" * 199}, {"_page": "99999999999"}):
        response = client.get("/fhir/Appointment", params=query, headers=headers)
        assert response.status_code == 422, (query, response.text)
