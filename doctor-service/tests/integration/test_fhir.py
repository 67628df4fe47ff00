"""Doctors over FHIR (/fhir/Practitioner): listed doctors only, found by (a word of) their name."""

from __future__ import annotations

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.practitioner import Practitioner

FHIR_JSON = "application/fhir+json"


def search(client, headers, **params) -> Bundle:
    response = client.get("/fhir/Practitioner", params=params, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(FHIR_JSON)
    return Bundle.model_validate_json(response.content)


def names(bundle: Bundle) -> list[str]:
    return [entry.resource.name[0].text for entry in bundle.entry or []]


def outcome(response, status: int) -> OperationOutcome:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(FHIR_JSON)
    return OperationOutcome.model_validate_json(response.content)


def test_a_listed_doctor_reads_as_a_practitioner(client, add_doctor, callers):
    add_doctor(41, "Gregory House", "Diagnostics")

    response = client.get("/fhir/Practitioner/41", headers=callers("patient").headers)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith(FHIR_JSON)
    practitioner = Practitioner.model_validate_json(response.content)
    assert (practitioner.id, practitioner.active, practitioner.name[0].text) == ("41", True, "Gregory House")
    assert practitioner.qualification[0].code.text == "Diagnostics"


def test_hidden_and_unknown_doctors_are_404_and_doctors_may_not_look(client, add_doctor, callers):
    add_doctor(42, "Hidden Doctor", is_active=False)

    assert (
        outcome(client.get("/fhir/Practitioner/42", headers=callers("admin").headers), 404).issue[0].code
        == "not-found"
    )
    assert outcome(client.get("/fhir/Practitioner/43", headers=callers("admin").headers), 404)
    assert (
        outcome(client.get("/fhir/Practitioner", headers=callers("doctor", 44).headers), 403).issue[0].code
        == "forbidden"
    )
    assert outcome(client.get("/fhir/Practitioner/41"), 401).issue[0].code == "login"


def test_name_search_matches_the_start_of_the_name_or_of_a_word_of_it(client, add_doctor, callers):
    add_doctor(51, "Ada Lovelace", "Cardiology")
    add_doctor(52, "Grace Hopper")
    add_doctor(53, "Adam Smith")
    add_doctor(54, "Hidden Ada", is_active=False)
    add_doctor(55, "Nada Ada_x")

    assert names(search(client, callers("patient").headers, name="ada")) == [
        "Ada Lovelace",
        "Adam Smith",
        "Nada Ada_x",
    ]
    assert names(search(client, callers("patient").headers, name="HOPP")) == ["Grace Hopper"]
    assert names(search(client, callers("patient").headers, name="ada_")) == [
        "Nada Ada_x"
    ]  # "_" is taken literally
    assert search(client, callers("admin").headers).total == 4

    first = search(client, callers("admin").headers, _count=3)
    assert (first.total, len(first.entry)) == (4, 3)
    [next_url] = [link.url for link in first.link if link.relation == "next"]
    assert names(
        Bundle.model_validate_json(client.get(next_url, headers=callers("admin").headers).content)
    ) == ["Nada Ada_x"]


def test_hostile_names_and_ids_are_4xx_never_500(client, callers):
    headers = callers("patient").headers
    assert outcome(client.get("/fhir/Practitioner", params={"name": "a\u0000"}, headers=headers), 422)
    assert outcome(client.get("/fhir/Practitioner", params={"name": "x" * 101}, headers=headers), 422)
    assert outcome(client.get("/fhir/Practitioner", params={"_count": -1}, headers=headers), 422)
    assert outcome(client.get("/fhir/Practitioner/1%00", headers=headers), 404)


def test_a_read_of_an_id_that_is_not_one_of_ours_is_a_404_not_a_422(client, add_doctor, callers):
    add_doctor(46, "Lisa Cuddy", "Endocrinology")
    headers = callers("patient").headers
    assert client.get("/fhir/Practitioner/46", headers=headers).status_code == 200

    for path in ("046", "0", "abc", "4.6", "-46", "99999999999999999999", "9223372036854775808"):
        parsed = outcome(client.get(f"/fhir/Practitioner/{path}", headers=headers), 404)
        assert (parsed.issue[0].code, parsed.issue[0].details.coding[0].code) == (
            "not-found",
            "doctor_not_found",
        )


def test_count_0_counts_only_and_a_count_above_100_is_read_as_100(client, add_doctor, callers):
    add_doctor(47, "James Wilson", "Oncology")
    headers = callers("admin").headers

    counted = search(client, headers, name="James W", _count=0)
    assert (counted.total, counted.entry, [link.relation for link in counted.link]) == (1, None, ["self"])
    capped = search(client, headers, name="James W", _count=1000)
    assert (capped.total, [e.resource.id for e in capped.entry]) == (1, ["47"])
