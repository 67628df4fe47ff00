"""chassis.fhir: OperationOutcome for every problem of a FHIR request, searchset paging, search
parameters and the merged CapabilityStatement."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.testclient import TestClient
from fhir.resources.R4B.appointment import Appointment
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.schedule import Schedule
from fhir.resources.R4B.slot import Slot

from chassis.errors import DomainError, ProblemException, install_problem_handlers
from chassis.fhir import (
    FHIR_JSON,
    FhirErrors,
    FhirResponse,
    SearchPaging,
    capability_statement,
    date_bound,
    merge_capabilities,
    parse_resource,
    read_id,
    reference_id,
    resource_capability,
    searchset,
    token_codes,
)
from chassis.guards import UnexpectedErrors


class Taken(DomainError):
    code = "taken"


class NoSchedule(DomainError):
    code = "schedule_not_found"


def make_app() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app, {Taken: 409, NoSchedule: 404})

    @app.get("/fhir/Slot")
    def search(request: Request, paging: SearchPaging) -> FhirResponse:
        total = 5
        shown = range(paging.offset + 1, min(paging.offset + paging.limit, total) + 1)
        slots = [
            Slot(id=str(n), schedule={"reference": "Schedule/1"}, status="free", start=START, end=START)
            for n in shown
        ]
        return FhirResponse(searchset(request, paging, total, slots))

    @app.get("/fhir/Slot/{slot_id}")
    def read(slot_id: int) -> FhirResponse:
        raise Taken("This slot is taken.")

    @app.get("/fhir/Schedule/{id}")
    def read_schedule(schedule_id: read_id("Schedule", NoSchedule)) -> dict[str, int]:
        return {"id": schedule_id}

    @app.get("/fhir/Schedule")
    def search_many(request: Request, paging: SearchPaging) -> FhirResponse:
        total = 250
        shown = range(paging.offset + 1, min(paging.offset + paging.limit, total) + 1)
        return FhirResponse(searchset(request, paging, total, [_schedule(n) for n in shown]))

    @app.get("/api/thing/")
    def thing() -> None:
        raise ProblemException(403, "Not yours.", code="forbidden", headers={"X-Extra": "kept"})

    @app.get("/internal/verify")
    def verify() -> None:
        raise ProblemException(
            401, "No token.", code="not_authenticated", headers={"WWW-Authenticate": "Bearer"}
        )

    app.add_middleware(FhirErrors)
    return app


START = datetime(2030, 1, 1, 9, tzinfo=UTC)


def _schedule(number: int) -> Schedule:
    return Schedule(id=str(number), actor=[{"reference": f"Practitioner/{number}"}])


@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(make_app())


def outcome(response, status: int) -> OperationOutcome:
    assert response.status_code == status
    assert response.headers["content-type"] == FHIR_JSON
    assert int(response.headers["content-length"]) == len(response.content)
    return OperationOutcome.model_validate_json(response.content)


def test_a_domain_error_of_a_fhir_request_is_an_operation_outcome_with_its_status_and_code(client):
    parsed = outcome(client.get("/fhir/Slot/1"), 409)
    [issue] = parsed.issue
    assert (issue.severity, issue.code, issue.diagnostics) == ("error", "conflict", "This slot is taken.")
    assert issue.details.coding[0].code == "taken"


def test_validation_errors_become_one_issue_per_field(client):
    parsed = outcome(client.get("/fhir/Slot", params={"_count": "many"}), 422)
    assert parsed.issue[0].code == "invalid"
    assert parsed.issue[1].expression == ["_count"]


def test_an_unknown_fhir_path_is_a_not_found_outcome_and_other_paths_stay_problem_json(client):
    assert outcome(client.get("/fhir/Nothing"), 404).issue[0].code == "not-found"
    response = client.get("/api/thing/")
    assert (response.status_code, response.headers["content-type"]) == (403, "application/problem+json")


def test_the_gateways_token_check_of_a_fhir_request_answers_an_outcome_with_the_same_headers(client):
    response = client.get("/internal/verify", headers={"X-Forwarded-Uri": "/fhir/Slot?schedule=1"})
    assert outcome(response, 401).issue[0].code == "login"
    assert response.headers["www-authenticate"] == "Bearer"
    plain = client.get("/internal/verify", headers={"X-Forwarded-Uri": "/api/appointments/"})
    assert plain.headers["content-type"] == "application/problem+json"


def test_a_searchset_counts_everything_and_links_the_next_and_previous_pages(client):
    first = Bundle.model_validate_json(client.get("/fhir/Slot", params={"_count": 2}).content)
    assert (first.type, first.total, [e.resource.id for e in first.entry]) == ("searchset", 5, ["1", "2"])
    links = {link.relation: link.url for link in first.link}
    assert set(links) == {"self", "next"}
    assert first.entry[0].fullUrl == "http://testserver/fhir/Slot/1"

    last = Bundle.model_validate_json(client.get("/fhir/Slot", params={"_count": 2, "_page": 3}).content)
    assert [e.resource.id for e in last.entry] == ["5"]
    links = {link.relation: link.url for link in last.link}
    assert set(links) == {"self", "previous"}
    assert "_page=2" in links["previous"] and "_count=2" in links["previous"]


def test_count_0_answers_only_the_total_and_the_self_link(client):
    for params in ({"_count": 0}, {"_count": 0, "_page": 3}):
        response = client.get("/fhir/Slot", params=params)
        assert response.status_code == 200, response.text
        bundle = Bundle.model_validate_json(response.content)
        assert (bundle.type, bundle.total, bundle.entry) == ("searchset", 5, None)
        assert [(link.relation, link.url) for link in bundle.link] == [("self", str(response.url))]


def test_a_count_above_the_maximum_is_read_as_100_and_the_next_link_says_so(client):
    response = client.get("/fhir/Schedule", params={"_count": 1000})
    assert response.status_code == 200, response.text
    bundle = Bundle.model_validate_json(response.content)
    assert (bundle.total, len(bundle.entry)) == (250, 100)
    links = {link.relation: link.url for link in bundle.link}
    assert parse_qs(urlsplit(links["self"]).query)["_count"] == ["1000"]
    assert parse_qs(urlsplit(links["next"]).query) == {"_count": ["100"], "_page": ["2"]}
    second = Bundle.model_validate_json(client.get(links["next"]).content)
    assert [e.resource.id for e in second.entry] == [str(n) for n in range(101, 201)]
    assert outcome(client.get("/fhir/Schedule", params={"_count": -1}), 422).issue[1].expression == ["_count"]


@pytest.mark.parametrize("value", ["7", "9223372036854775807"])
def test_a_read_id_is_the_number_it_writes(client, value):
    response = client.get(f"/fhir/Schedule/{value}")
    assert (response.status_code, response.json()) == (200, {"id": int(value)})


@pytest.mark.parametrize(
    "value", ["0", "007", "abc", "7.0", "-7", "9223372036854775808", "99999999999999999999", "a" * 64, "1%00"]
)
def test_a_read_of_an_id_that_is_not_one_of_ours_is_the_services_404(client, value):
    parsed = outcome(client.get(f"/fhir/Schedule/{value}"), 404)
    assert parsed.issue[0].code == "not-found"
    assert parsed.issue[0].details.coding[0].code == "schedule_not_found"


def test_an_empty_searchset_has_no_entries():
    bundle = searchset(_request(), _paging(), 0, [])
    assert (bundle.total, bundle.entry) == (0, None)


def _request() -> Request:
    return Request({"type": "http", "method": "GET", "path": "/fhir/Slot", "query_string": b"", "headers": [],
                    "scheme": "http", "server": ("clinic.example", 80), "root_path": ""})  # fmt: skip


def _paging():
    from chassis.pagination import PageParams

    return PageParams(page=1, page_size=20)


UTC_TZ = ZoneInfo("UTC")


@pytest.mark.parametrize(
    ("value", "prefix", "start", "end"),
    [
        ("2030-03-04", "eq", "2030-03-04T00:00:00+00:00", "2030-03-05T00:00:00+00:00"),
        ("ge2030-03-04T09:30:00Z", "ge", "2030-03-04T09:30:00+00:00", "2030-03-04T09:30:01+00:00"),
        ("lt2030-03-04T09:30+02:00", "lt", "2030-03-04T09:30:00+02:00", "2030-03-04T09:31:00+02:00"),
        (
            "2030-03-04T09:30:00.250Z",
            "eq",
            "2030-03-04T09:30:00.250000+00:00",
            "2030-03-04T09:30:00.250001+00:00",
        ),
        # Nanoseconds (a Java Instant): FHIR allows any number of digits; read to the microsecond.
        (
            "ge2030-03-04T09:30:00.123456789Z",
            "ge",
            "2030-03-04T09:30:00.123456+00:00",
            "2030-03-04T09:30:00.123457+00:00",
        ),
    ],
)
def test_date_values_name_a_range_of_time(value, prefix, start, end):
    bound = date_bound(value, UTC_TZ, parameter="start")
    assert (bound.prefix, bound.start.isoformat(), bound.end.isoformat()) == (prefix, start, end)


@pytest.mark.parametrize(
    ("value", "prefix", "start", "end"),
    [
        ("ge2030-03", "ge", "2030-02-28T23:00:00+00:00", "2030-03-31T22:00:00+00:00"),
        ("2030-02", "eq", "2030-01-31T23:00:00+00:00", "2030-02-28T23:00:00+00:00"),
        ("ge2030", "ge", "2029-12-31T23:00:00+00:00", "2030-12-31T23:00:00+00:00"),
        ("lt2030", "lt", "2029-12-31T23:00:00+00:00", "2030-12-31T23:00:00+00:00"),
    ],
)
def test_a_month_or_a_year_names_all_of_it_in_the_clinic_time_zone(value, prefix, start, end):
    bound = date_bound(value, ZoneInfo("Europe/Berlin"), parameter="start")
    assert (bound.prefix, bound.start.astimezone(UTC).isoformat(), bound.end.astimezone(UTC).isoformat()) == (
        prefix,
        start,
        end,
    )


def test_a_day_is_read_in_the_clinic_time_zone():
    bound = date_bound("gt2030-07-01", ZoneInfo("Europe/Berlin"), parameter="start")
    assert bound.start.astimezone(UTC) == datetime(2030, 6, 30, 22, tzinfo=UTC)


@pytest.mark.parametrize(
    "value",
    ["", "tomorrow", "ap2030-03-04", "2030-13-01", "ge2030-03-04T25:00Z", "203", "ge2030-01-01T00:00+99:00",
     "ge9999-12-31T23:59:59Z", "0001-01-01", "lt\x002030-01-01", "2030-13", "2030-00", "ge2030-3", "9999",
     "0001", "\u0662\u0660\u0663\u0660", "2030-03T10:00",
     # Times other than hh:mm[:ss[.fff…]] (Python's fromisoformat reads these, with another meaning)
     "eq2030-03-04T12", "2030-03-04T1230", "2030-03-04T12:30.5", "2030-03-04T12.5",
     "2030-03-04T12:30:00."],
)  # fmt: skip
def test_other_date_values_are_422(value):
    with pytest.raises(ProblemException) as raised:
        date_bound(value, UTC_TZ, parameter="start")
    assert raised.value.status == 422


STATUS = "http://hl7.org/fhir/slotstatus"


@pytest.mark.parametrize(
    ("value", "wanted"),
    [
        ("free", {"free"}),
        ("free,busy", {"free", "busy"}),
        (f"{STATUS}|free", {"free"}),
        (f"{STATUS}|busy, free", {"free", "busy"}),
        (f"{STATUS}|", {"free", "busy"}),
    ],
)
def test_a_token_value_is_codes_or_system_and_code_any_of_them(value, wanted):
    assert token_codes(value, ("free", "busy"), system=STATUS, parameter="status") == wanted


@pytest.mark.parametrize(
    "value", ["", "maybe", "free,", "http://hl7.org/fhir/appointmentstatus|free", "|free", f"{STATUS}|maybe"]
)
def test_other_token_values_are_422(value):
    with pytest.raises(ProblemException) as raised:
        token_codes(value, ("free", "busy"), system=STATUS, parameter="status")
    assert raised.value.status == 422


@pytest.mark.parametrize(
    "value", ["Schedule/7", "7", "https://clinic.example/fhir/Schedule/7", " Schedule/7 "]
)
def test_references_name_an_id(value):
    assert reference_id(value, "Schedule", parameter="schedule") == 7


@pytest.mark.parametrize(
    "value", ["Schedule/0", "Schedule/007", "Schedule/x", "Schedule/" + "9" * 20, "abc", "Schedule/a.b-c"]
)
def test_references_to_ids_that_cannot_be_ours_name_none(value):
    # Valid FHIR ids that no resource of Clinic has (a read of them is a 404): the search finds nothing.
    assert reference_id(value, "Schedule", parameter="schedule") is None


@pytest.mark.parametrize(
    "value", ["Slot/7", "Schedule/", "Schedule/7/x", "Schedule/a_b", "Schedule/" + "1" * 65, ""]
)
def test_other_references_are_422(value):
    with pytest.raises(ProblemException):
        reference_id(value, "Schedule", parameter="schedule")


APPOINTMENT = {
    "resourceType": "Appointment",
    "status": "booked",
    "slot": [{"reference": "Slot/1"}],
    "participant": [{"actor": {"reference": "Patient/2"}, "status": "accepted"}],
}
MODIFIER = [{"url": "http://example.org/not-really", "valueBoolean": True}]


@pytest.mark.parametrize(
    ("changes", "element"),
    [
        ({"implicitRules": "http://example.org/our-rules"}, "implicitRules"),
        ({"modifierExtension": MODIFIER}, "modifierExtension"),
        (
            {"participant": [{**APPOINTMENT["participant"][0], "modifierExtension": MODIFIER}]},
            "participant.0.modifierExtension",
        ),
        ({"slot": [{"reference": "Slot/1", "modifierExtension": MODIFIER}]}, "slot.0.modifierExtension"),
        (
            {"contained": [{"resourceType": "Patient", "id": "p", "implicitRules": "http://example.org/x"}]},
            "contained.0.implicitRules",
        ),
    ],
)
def test_a_posted_resource_with_rules_or_modifiers_it_does_not_understand_is_refused(changes, element):
    with pytest.raises(RequestValidationError) as raised:
        parse_resource(Appointment, {**APPOINTMENT, **changes})
    [error] = raised.value.errors()
    assert error["loc"] == ("body", element)


def test_a_posted_resource_with_plain_extensions_is_read():
    extension = [{"url": "http://example.org/colour", "valueString": "blue"}]
    assert parse_resource(Appointment, {**APPOINTMENT, "extension": extension}).status == "booked"


def test_the_capability_statements_of_the_services_merge_into_one():
    parts = [
        capability_statement([resource_capability("Practitioner")], base_url="http://a/fhir"),
        capability_statement(
            [resource_capability("Slot", search_params={"schedule": ("reference", "Schedule/<id>")}),
             resource_capability("Practitioner", interactions=("read",))],
            base_url="http://b/fhir",
        ),
    ]  # fmt: skip
    merged = merge_capabilities([p.model_dump(mode="json") for p in parts], base_url="http://gw/fhir")

    assert isinstance(merged, CapabilityStatement)
    assert merged.fhirVersion == "4.3.0"
    assert merged.implementation.url == "http://gw/fhir"
    resources = merged.rest[0].resource
    assert [r.type for r in resources] == ["Practitioner", "Slot"]
    assert [i.code for i in resources[0].interaction] == ["read", "search-type"]
    assert resources[1].searchParam[0].name == "schedule"


def test_an_unexpected_error_of_a_fhir_request_is_a_500_operation_outcome_without_details():
    app = FastAPI()
    install_problem_handlers(app, {})

    @app.get("/fhir/Slot")
    def broken() -> None:
        raise RuntimeError("secret internals")

    app.add_middleware(UnexpectedErrors)
    app.add_middleware(FhirErrors)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/fhir/Slot")
    parsed = outcome(response, 500)
    assert parsed.issue[0].code == "exception"
    assert "secret" not in response.text
