"""Schedules and timeslots over FHIR (/fhir/Schedule, /fhir/Slot): a Slot is free exactly when the
REST API lists it as free; searches are paged searchset Bundles; errors are OperationOutcomes."""

from __future__ import annotations

import uuid

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.schedule import Schedule
from fhir.resources.R4B.slot import Slot
from sqlalchemy import update

from scheduling.models import Doctor

FHIR_JSON = "application/fhir+json"


def publish(client, headers, start, end, rfc3339) -> dict:
    response = client.post(
        "/api/timeslots/", json={"start_time": rfc3339(start), "end_time": rfc3339(end)}, headers=headers
    )
    assert response.status_code == 201, response.text
    return response.json()


def slots(client, headers, **params) -> Bundle:
    response = client.get("/fhir/Slot", params=params, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(FHIR_JSON)
    return Bundle.model_validate_json(response.content)


def outcome(response, status: int) -> OperationOutcome:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(FHIR_JSON)
    return OperationOutcome.model_validate_json(response.content)


def statuses(bundle: Bundle) -> list[tuple[str, str]]:
    return [(entry.resource.id, entry.resource.status) for entry in bundle.entry or []]


def test_a_doctors_slots_are_free_or_busy_as_the_rest_listing_says(
    client, doctor, patient, when, rfc3339, from_booking
):
    doctor_id, headers = doctor
    patient_id, patient_headers = patient
    first = publish(client, headers, when(60, 9), when(60, 10), rfc3339)
    held = publish(client, headers, when(60, 10), when(60, 11), rfc3339)
    last = publish(client, headers, when(61, 9), when(61, 10), rfc3339)
    hold = {"reservation_id": str(uuid.uuid4()), "patient_id": patient_id}
    assert (
        client.post(f"/internal/timeslots/{held['id']}/hold", json=hold, headers=from_booking).status_code
        == 200
    )

    everything = slots(client, patient_headers, schedule=f"Schedule/{doctor_id}")
    assert everything.type == "searchset" and everything.total == 3
    assert statuses(everything) == [
        (str(first["id"]), "free"),
        (str(held["id"]), "busy"),
        (str(last["id"]), "free"),
    ]
    slot = everything.entry[0].resource
    assert slot.schedule.reference == f"Schedule/{doctor_id}"
    assert slot.start.isoformat() == first["start_time"].replace("Z", "+00:00")

    free = slots(client, patient_headers, schedule=f"Schedule/{doctor_id}", status="free")
    rest = client.get(f"/api/doctors/{doctor_id}/timeslots/", headers=patient_headers).json()
    assert [e.resource.id for e in free.entry] == [str(t["id"]) for t in rest["results"]]
    busy = slots(client, patient_headers, schedule=str(doctor_id), status="busy")
    assert statuses(busy) == [(str(held["id"]), "busy")]

    day = when(60, 0).date().isoformat()
    that_day = slots(
        client, patient_headers, schedule=f"Schedule/{doctor_id}", start=[f"ge{day}", f"lt{day}T10:00:00Z"]
    )
    assert statuses(that_day) == [(str(first["id"]), "free")]
    assert slots(client, patient_headers, schedule=f"Schedule/{doctor_id}", start=f"gt{day}").total == 1


def test_a_large_schedule_is_paged_with_next_links(client, doctor, patient, when, rfc3339):
    doctor_id, headers = doctor
    for hour in range(8):
        publish(client, headers, when(70, 8 + hour), when(70, 9 + hour), rfc3339)

    seen, url, pages = [], "/fhir/Slot", 0
    params = {"schedule": f"Schedule/{doctor_id}", "_count": 3}
    while url:
        response = client.get(url, params=params, headers=patient[1])
        bundle = Bundle.model_validate_json(response.content)
        assert bundle.total == 8
        seen += [entry.resource.start for entry in bundle.entry]
        url = next((link.url for link in bundle.link if link.relation == "next"), None)
        params, pages = None, pages + 1
    assert pages == 3
    assert seen == sorted(seen) and len(set(seen)) == 8


def test_the_schedule_and_a_slot_read_by_id(client, doctor, patient, callers, when, rfc3339):
    doctor_id, headers = doctor
    made = publish(client, headers, when(62, 9), when(62, 10), rfc3339)

    schedule = Schedule.model_validate_json(
        client.get(f"/fhir/Schedule/{doctor_id}", headers=patient[1]).content
    )
    assert (schedule.id, schedule.actor[0].reference) == (str(doctor_id), f"Practitioner/{doctor_id}")
    assert client.get(f"/fhir/Schedule/{doctor_id}", headers=headers).status_code == 200
    slot = Slot.model_validate_json(
        client.get(f"/fhir/Slot/{made['id']}", headers=callers("admin").headers).content
    )
    assert (slot.status, slot.schedule.reference) == ("free", f"Schedule/{doctor_id}")

    found = Bundle.model_validate_json(
        client.get(
            "/fhir/Schedule", params={"actor": f"Practitioner/{doctor_id}"}, headers=patient[1]
        ).content
    )
    assert (found.total, [e.resource.id for e in found.entry]) == (1, [str(doctor_id)])
    nobody = client.get("/fhir/Schedule", params={"actor": "Practitioner/987654321987"}, headers=patient[1])
    assert (Bundle.model_validate_json(nobody.content).total, nobody.status_code) == (0, 200)
    assert outcome(client.get("/fhir/Schedule", headers=patient[1]), 422)

    other_doctor = callers("doctor").headers
    assert (
        outcome(client.get(f"/fhir/Schedule/{doctor_id}", headers=other_doctor), 403).issue[0].code
        == "forbidden"
    )
    assert outcome(client.get(f"/fhir/Slot/{made['id']}", headers=other_doctor), 404)
    assert outcome(
        client.get("/fhir/Slot", params={"schedule": f"Schedule/{doctor_id}"}, headers=other_doctor), 403
    )
    assert (
        outcome(client.get("/fhir/Schedule/987654321987", headers=patient[1]), 404).issue[0].code
        == "not-found"
    )


def test_bad_searches_are_422_operation_outcomes(client, doctor, patient):
    doctor_id, _ = doctor
    headers = patient[1]
    for params in (
        {},
        {"schedule": "Practitioner/3"},
        {"schedule": f"Schedule/{doctor_id}", "status": "maybe"},
        {"schedule": f"Schedule/{doctor_id}", "start": "after-lunch"},
        {"schedule": f"Schedule/{doctor_id}", "start": "ge2030-02-30"},
        {"schedule": f"Schedule/{doctor_id}", "start": "ge2030-13"},
        {"schedule": f"Schedule/{doctor_id}", "status": "http://hl7.org/fhir/appointmentstatus|booked"},
        {"schedule": f"Schedule/{doctor_id}", "_count": -1},
    ):
        parsed = outcome(client.get("/fhir/Slot", params=params, headers=headers), 422)
        assert parsed.issue[0].code == "invalid", params
    assert outcome(client.get("/fhir/Slot", params={"schedule": "Schedule/1"}), 401).issue[0].code == "login"


def test_hostile_search_values_are_422_never_500(client, doctor, patient):
    doctor_id, _ = doctor
    schedule = f"Schedule/{doctor_id}"
    for params in (
        {"schedule": "Schedule/\u0000"},
        {"schedule": "Schedule/a_b"},
        {"schedule": schedule, "start": "ge9999-12-31T23:59:59Z"},
        {"schedule": schedule, "start": "ge0001-01-01"},
        {"schedule": schedule, "start": "ge2030-01-01T00:00:00+99:00"},
        {"schedule": schedule, "start": "ge2030-01-01\u0000"},
        {"schedule": schedule, "start": ["ge2030-01-01"] * 5},
        {"schedule": schedule, "status": "free\u0000"},
        {"schedule": schedule, "_page": 10**7},
    ):
        response = client.get("/fhir/Slot", params=params, headers=patient[1])
        assert outcome(response, 422).issue[0].code == "invalid", params
    for path in ("/fhir/Slot/0", "/fhir/Schedule/99999999999999999999", "/fhir/Slot/1%00"):
        assert 400 <= client.get(path, headers=patient[1]).status_code < 500, path


def test_a_slot_the_doctors_policy_keeps_from_booking_is_busy_as_it_is_not_listed_free(
    client, db, doctor, patient, when, rfc3339
):
    doctor_id, headers = doctor
    soon = publish(client, headers, when(2, 9), when(2, 10), rfc3339)
    later = publish(client, headers, when(80, 9), when(80, 10), rfc3339)
    with db.transaction() as session:  # as doctor.profile.updated would set it: three days' notice
        session.execute(update(Doctor).where(Doctor.id == doctor_id).values(min_notice_minutes=3 * 24 * 60))

    listed = client.get(f"/api/doctors/{doctor_id}/timeslots/", headers=patient[1]).json()["results"]
    found = slots(client, patient[1], schedule=f"Schedule/{doctor_id}")
    assert [t["id"] for t in listed] == [later["id"]]
    assert statuses(found) == [(str(soon["id"]), "busy"), (str(later["id"]), "free")]


def test_a_read_of_an_id_that_is_not_one_of_ours_is_a_404_not_a_422(client, doctor, patient, when, rfc3339):
    doctor_id, headers = doctor
    made = publish(client, headers, when(63, 9), when(63, 10), rfc3339)
    assert client.get(f"/fhir/Slot/{made['id']}", headers=patient[1]).status_code == 200

    for path, code in (
        (f"/fhir/Slot/0{made['id']}", "timeslot_not_found"),
        ("/fhir/Slot/0", "timeslot_not_found"),
        ("/fhir/Slot/abc", "timeslot_not_found"),
        ("/fhir/Slot/99999999999999999999", "timeslot_not_found"),
        ("/fhir/Slot/1%00", "timeslot_not_found"),
        (f"/fhir/Schedule/00{doctor_id}", "doctor_not_found"),
        ("/fhir/Schedule/0", "doctor_not_found"),
        ("/fhir/Schedule/abc", "doctor_not_found"),
        ("/fhir/Schedule/99999999999999999999", "doctor_not_found"),
    ):
        parsed = outcome(client.get(path, headers=patient[1]), 404)
        assert (parsed.issue[0].code, parsed.issue[0].details.coding[0].code) == ("not-found", code), path


def test_count_0_counts_only_and_a_count_above_100_is_read_as_100(client, doctor, patient, when, rfc3339):
    doctor_id, headers = doctor
    for hour in range(3):
        publish(client, headers, when(64, 9 + hour), when(64, 10 + hour), rfc3339)

    counted = slots(client, patient[1], schedule=f"Schedule/{doctor_id}", _count=0)
    assert (counted.total, counted.entry, [link.relation for link in counted.link]) == (3, None, ["self"])
    found = Bundle.model_validate_json(
        client.get(
            "/fhir/Schedule", params={"actor": f"Practitioner/{doctor_id}", "_count": 0}, headers=patient[1]
        ).content
    )
    assert (found.total, found.entry) == (1, None)
    capped = slots(client, patient[1], schedule=f"Schedule/{doctor_id}", _count=1000)
    assert (capped.total, len(capped.entry)) == (3, 3)


def test_the_slots_of_an_unknown_or_deactivated_doctor_are_an_empty_searchset(
    client, db, doctor, patient, callers, when, rfc3339
):
    doctor_id, headers = doctor
    publish(client, headers, when(65, 9), when(65, 10), rfc3339)
    assert slots(client, patient[1], schedule=f"Schedule/{doctor_id}").total == 1
    # Ids that cannot be a schedule of ours (a read of them is a 404) reference nothing.
    for schedule in (f"Schedule/00{doctor_id}", "Schedule/abc", "Schedule/0", "Schedule/" + "9" * 20):
        nothing = slots(client, patient[1], schedule=schedule)
        assert (nothing.type, nothing.total, nothing.entry) == ("searchset", 0, None), schedule
    with db.transaction() as session:  # as identity.user.deactivated would set it
        session.execute(update(Doctor).where(Doctor.id == doctor_id).values(is_active=False))

    for schedule in (f"Schedule/{doctor_id}", "Schedule/987654321987"):
        for caller in (patient[1], callers("admin").headers):
            nothing = slots(client, caller, schedule=schedule)
            assert (nothing.type, nothing.total, nothing.entry) == ("searchset", 0, None), schedule
    # A doctor still may not look at another doctor's schedule, there or not.
    other_doctor = callers("doctor").headers
    assert outcome(
        client.get("/fhir/Slot", params={"schedule": "Schedule/987654321987"}, headers=other_doctor), 403
    )


def test_slot_status_with_its_system_and_start_by_month_or_year(client, doctor, patient, when, rfc3339):
    doctor_id, headers = doctor
    first = publish(client, headers, when(66, 9), when(66, 10), rfc3339)
    later = publish(client, headers, when(66 + 62, 9), when(66 + 62, 10), rfc3339)  # two months on
    schedule = f"Schedule/{doctor_id}"

    free = slots(client, patient[1], schedule=schedule, status="http://hl7.org/fhir/slotstatus|free")
    assert [e.resource.id for e in free.entry] == [str(first["id"]), str(later["id"])]
    either = slots(client, patient[1], schedule=schedule, status="http://hl7.org/fhir/slotstatus|busy,free")
    assert either.total == 2

    month, year = when(66).strftime("%Y-%m"), when(66).strftime("%Y")
    that_month = slots(client, patient[1], schedule=schedule, start=month)
    assert [e.resource.id for e in that_month.entry] == [str(first["id"])]
    after_it = slots(client, patient[1], schedule=schedule, start=f"gt{month}")
    assert [e.resource.id for e in after_it.entry] == [str(later["id"])]
    from_the_year = slots(client, patient[1], schedule=schedule, start=f"ge{year}")
    assert from_the_year.total == 2
    assert slots(client, patient[1], schedule=schedule, start=f"lt{year}").total == 0
