"""chassis.fhir: OperationOutcome for every problem of a FHIR request, searchset paging, search
parameters and the merged CapabilityStatement."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.operationoutcome import OperationOutcome
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
    reference_id,
    resource_capability,
    searchset,
)
from chassis.guards import UnexpectedErrors


class Taken(DomainError):
    code = "taken"


def make_app() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app, {Taken: 409})

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
    ],
)
def test_date_values_name_a_range_of_time(value, prefix, start, end):
    bound = date_bound(value, UTC_TZ, parameter="start")
    assert (bound.prefix, bound.start.isoformat(), bound.end.isoformat()) == (prefix, start, end)


def test_a_day_is_read_in_the_clinic_time_zone():
    bound = date_bound("gt2030-07-01", ZoneInfo("Europe/Berlin"), parameter="start")
    assert bound.start.astimezone(UTC) == datetime(2030, 6, 30, 22, tzinfo=UTC)


@pytest.mark.parametrize(
    "value",
    ["", "tomorrow", "ap2030-03-04", "2030-13-01", "ge2030-03-04T25:00Z", "2030", "ge2030-01-01T00:00+99:00",
     "ge9999-12-31T23:59:59Z", "0001-01-01", "lt\x002030-01-01"],
)  # fmt: skip
def test_other_date_values_are_422(value):
    with pytest.raises(ProblemException) as raised:
        date_bound(value, UTC_TZ, parameter="start")
    assert raised.value.status == 422


@pytest.mark.parametrize(
    "value", ["Schedule/7", "7", "https://clinic.example/fhir/Schedule/7", " Schedule/7 "]
)
def test_references_name_an_id(value):
    assert reference_id(value, "Schedule", parameter="schedule") == 7


@pytest.mark.parametrize("value", ["Slot/7", "Schedule/0", "Schedule/x", "Schedule/99999999999999999999", ""])
def test_other_references_are_422(value):
    with pytest.raises(ProblemException):
        reference_id(value, "Schedule", parameter="schedule")


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
