"""HL7 FHIR plumbing for the services that serve resources under ``/fhir/`` (spec/API.md, "FHIR R4").

Written once, used by every service's own ``fhir`` module:

- FHIR R4B (4.3.0) models of ``fhir.resources``: every resource a service answers is one of
  them, so it validates against the FHIR definitions before it leaves (``FhirResponse``).
- ``FhirErrors``: every problem+json error of a FHIR request (domain errors, validation,
  401/403 of the token checks, 404/405 of the router, 413/415 of the body guard, 500, 503)
  becomes an ``OperationOutcome`` with the same status, so the services' error tables stay
  the one place that decides statuses.
- Search: ``_count``/``_page`` paging into a ``searchset`` Bundle with ``total`` and
  ``self``/``next``/``previous`` links; date (``ge``, ``gt``, ``le``, ``lt``, ``eq``) and
  reference (``Type/id``) parameters.
- The ``CapabilityStatement``: each service describes its own resources
  (``resource_capability``) and serves its own statement; the gateway's ``/fhir/metadata``
  merges them (``merge_capabilities``, in the docs app), like the OpenAPI documents.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Annotated, Any, TypeVar
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.resource import Resource
from pydantic import ValidationError
from sqlalchemy import ColumnElement, and_
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chassis.errors import PROBLEM_JSON, ProblemException
from chassis.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, PageParams
from chassis.timezones import day_bounds

FHIR_JSON = "application/fhir+json"
FHIR_VERSION = "4.3.0"  # R4B: the models of fhir.resources.R4B
BASE_PATH = "/fhir"
# Machine-readable codes of Clinic's errors (the problem+json ``code``) in OperationOutcome issues.
PROBLEM_CODE_SYSTEM = "urn:clinic:problem-code"
# When this server's capabilities last changed (CapabilityStatement.date).
CAPABILITIES_DATE = "2026-12-02"
MAX_ID = 2**63 - 1
ResourceT = TypeVar("ResourceT", bound=Resource)

# The FHIR issue type (IssueType value set) of each HTTP status a service answers.
ISSUE_TYPE_OF = {
    400: "structure",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    409: "conflict",
    413: "too-long",
    415: "not-supported",
    422: "invalid",
    429: "throttled",
    502: "transient",
    503: "transient",
    504: "timeout",
}


class FhirResponse(Response):
    """A FHIR resource (a ``fhir.resources`` model, validated when built) as ``application/fhir+json``."""

    media_type = FHIR_JSON

    def render(self, content: Any) -> bytes:
        if isinstance(content, bytes):
            return content
        return content.model_dump_json(exclude_none=True).encode()


def fhir_base(request: Request) -> str:
    """The absolute FHIR base URL as the client reached it (the gateway's host), without a slash."""
    return str(request.base_url).rstrip("/") + BASE_PATH


def is_fhir_request(path: str, headers: Headers) -> bool:
    """Whether a request is (or, for the gateway's token check, is about) a FHIR request.

    ForwardAuth's check carries the checked request's path in ``X-Forwarded-Uri``; a path the
    gateway replaced (its not-found and unavailable pages) in ``X-Replaced-Path``. Either only
    chooses how an error is written, never whether it happens.
    """
    candidates = (path, headers.get("x-forwarded-uri", ""), headers.get("x-replaced-path", ""))
    return any(value == BASE_PATH or value.startswith(BASE_PATH + "/") for value in candidates)


# -- errors ------------------------------------------------------------------------------------


def operation_outcome(
    status: int, detail: str, *, code: str | None = None, errors: Iterable[Mapping[str, Any]] = ()
) -> OperationOutcome:
    """The OperationOutcome of an error: one issue for the error, one more per invalid field."""
    issue_type = ISSUE_TYPE_OF.get(status, "exception" if status >= 500 else "processing")
    details: dict[str, Any] = {"text": detail}
    if code:
        details["coding"] = [{"system": PROBLEM_CODE_SYSTEM, "code": code}]
    issues: list[dict[str, Any]] = [
        {"severity": "error", "code": issue_type, "details": details, "diagnostics": detail}
    ]
    for error in errors:
        field, message = str(error.get("field") or ""), str(error.get("message") or "")
        if message:
            issue: dict[str, Any] = {"severity": "error", "code": issue_type, "diagnostics": message}
            if field:
                issue["expression"] = [field]
            issues.append(issue)
    return OperationOutcome(issue=issues)


def outcome_of_problem(problem: Mapping[str, Any], status: int) -> OperationOutcome:
    """The OperationOutcome saying what an RFC 9457 problem body says."""
    errors = problem.get("errors")
    return operation_outcome(
        status,
        str(problem.get("detail") or problem.get("title") or "The request failed."),
        code=problem.get("code") if isinstance(problem.get("code"), str) else None,
        errors=[e for e in errors if isinstance(e, Mapping)] if isinstance(errors, list) else (),
    )


class FhirErrors:
    """Pure ASGI middleware: a problem+json answer to a FHIR request becomes an OperationOutcome.

    Same status and headers (``WWW-Authenticate``, ``Retry-After``, ``Allow`` ...); only the body
    and its type change. Other requests and answers pass through untouched.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_fhir_request(scope["path"], Headers(scope=scope)):
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        body = bytearray()

        async def rewriting_send(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                content_type = Headers(raw=message.get("headers", [])).get("content-type", "")
                if content_type.startswith(PROBLEM_JSON):
                    start = message  # held until the whole problem body is here
                    return
            elif message["type"] == "http.response.body" and start is not None:
                body.extend(message.get("body", b""))
                if message.get("more_body", False):
                    return
                await _send_outcome(send, start, bytes(body))
                return
            await send(message)

        await self.app(scope, receive, rewriting_send)


async def _send_outcome(send: Send, start: Message, problem_body: bytes) -> None:
    status = int(start["status"])
    try:
        problem = json.loads(problem_body)
    except ValueError:
        problem = {}
    outcome = outcome_of_problem(problem if isinstance(problem, dict) else {}, status)
    payload = outcome.model_dump_json(exclude_none=True).encode()
    headers = [
        (name, value)
        for name, value in start.get("headers", [])
        if name.lower() not in (b"content-type", b"content-length")
    ]
    headers += [(b"content-type", FHIR_JSON.encode()), (b"content-length", str(len(payload)).encode())]
    await send({**start, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def invalid_search(detail: str) -> ProblemException:
    """A 422 about one search parameter (rendered as an OperationOutcome by ``FhirErrors``)."""
    return ProblemException(422, detail, code="invalid_search_parameter")


# -- search ------------------------------------------------------------------------------------


async def search_page_params(
    count: Annotated[
        int, Query(alias="_count", ge=1, le=MAX_PAGE_SIZE, description="Resources per page, at most 100.")
    ] = DEFAULT_PAGE_SIZE,
    page: Annotated[int, Query(alias="_page", ge=1, le=1_000_000, description="Page number, from 1.")] = 1,
) -> PageParams:
    return PageParams(page=page, page_size=count)


SearchPaging = Annotated[PageParams, Depends(search_page_params)]


def searchset(request: Request, page: PageParams, total: int, resources: Sequence[Resource]) -> Bundle:
    """A ``searchset`` Bundle of one page: ``total`` over all pages, and paging links."""
    url = request.url

    def link(number: int) -> str:
        return str(url.include_query_params(_page=number, _count=page.page_size))

    links = [{"relation": "self", "url": str(url)}]
    if page.offset + len(resources) < total:
        links.append({"relation": "next", "url": link(page.page + 1)})
    if page.page > 1:
        links.append({"relation": "previous", "url": link(page.page - 1)})
    base = fhir_base(request)
    entries = [
        {
            "fullUrl": f"{base}/{resource.get_resource_type()}/{resource.id}",
            "resource": resource,
            "search": {"mode": "match"},
        }
        for resource in resources
    ]
    return Bundle(type="searchset", total=total, link=links, entry=entries or None)


def reference_id(value: str, resource_type: str, *, parameter: str) -> int:
    """The id of a reference search value: ``Type/123``, ``123`` or ``<base>/Type/123``; else 422."""
    found = re.fullmatch(rf"(?:(?:.*/)?{resource_type}/)?([0-9]{{1,19}})", value.strip())
    if found is None or not 1 <= int(found.group(1)) <= MAX_ID:
        raise invalid_search(f"{parameter} must reference a {resource_type} as {resource_type}/<id>.")
    return int(found.group(1))


@dataclass(frozen=True, slots=True)
class DateBound:
    """One ``date`` search value: a comparison prefix and the range of time the value names."""

    prefix: str
    start: datetime
    end: datetime  # exclusive

    def condition(self, column: ColumnElement[datetime]) -> ColumnElement[bool]:
        """Whether an instant ``column`` matches (FHIR's prefixes on a point in time)."""
        if self.prefix == "eq":
            return and_(column >= self.start, column < self.end)
        if self.prefix == "ge":
            return column >= self.start
        if self.prefix == "gt":
            return column >= self.end
        if self.prefix == "le":
            return column < self.end
        return column < self.start  # lt


DATE_PREFIXES = ("eq", "ge", "gt", "le", "lt")
_DATE_VALUE = re.compile(r"(eq|ge|gt|le|lt)?(\d{4}-\d{2}-\d{2})(?:(T[0-9:.]+)(Z|[+-]\d{2}:\d{2})?)?")


def date_bound(value: str, tz: ZoneInfo, *, parameter: str) -> DateBound:
    """Parse ``[prefix]YYYY-MM-DD[Thh:mm[:ss][offset]]``; a day, or a time without an offset,
    is read in the clinic time zone ``tz``. Anything else is a 422."""
    found = _DATE_VALUE.fullmatch(value.strip())
    problem = invalid_search(
        f"{parameter} must be a date or a date-time, optionally prefixed by one of "
        f"{', '.join(DATE_PREFIXES)} (e.g. ge2030-03-04 or lt2030-03-04T12:00:00Z)."
    )
    if found is None:
        raise problem
    prefix, day, clock, offset = found.group(1) or "eq", found.group(2), found.group(3), found.group(4)
    try:
        if clock is None:
            return DateBound(prefix, *day_bounds(date.fromisoformat(day), tz))
        start = datetime.fromisoformat(day + clock + (offset or "").replace("Z", "+00:00"))
    except ValueError:
        raise problem from None
    if start.tzinfo is None:
        start = start.replace(tzinfo=tz)
    # A value to the minute or second names that whole minute or second.
    precision = timedelta(minutes=1) if clock.count(":") == 1 else timedelta(seconds=1)
    if start.microsecond:
        precision = timedelta(microseconds=1)
    return DateBound(prefix, start, start + precision)


# -- capabilities ------------------------------------------------------------------------------


def resource_capability(
    resource_type: str,
    *,
    interactions: Sequence[str] = ("read", "search-type"),
    search_params: Mapping[str, tuple[str, str]] = {},
    profile: str | None = None,
) -> dict[str, Any]:
    """One ``rest.resource`` entry: the interactions served, and ``{name: (type, documentation)}``."""
    entry: dict[str, Any] = {
        "type": resource_type,
        "interaction": [{"code": code} for code in interactions],
        "searchParam": [
            {"name": name, "type": kind, "documentation": doc} for name, (kind, doc) in search_params.items()
        ]
        or None,
    }
    if profile:
        entry["profile"] = profile
    return {key: value for key, value in entry.items() if value is not None}


SECURITY = {
    "cors": False,
    "description": "The same bearer access tokens as the REST API (POST /api/auth/login/): "
    "send Authorization: Bearer <access>. The same roles and rules apply; only /fhir/metadata is public.",
}


def capability_statement(resources: Sequence[Mapping[str, Any]], *, base_url: str) -> CapabilityStatement:
    """The CapabilityStatement of a FHIR server serving ``resources`` at ``base_url``."""
    return CapabilityStatement(
        status="active",
        date=CAPABILITIES_DATE,
        kind="instance",
        publisher="Clinic",
        software={"name": "Clinic"},
        implementation={"description": "Clinic: doctors, their schedules and appointments", "url": base_url},
        fhirVersion=FHIR_VERSION,
        format=["json"],
        rest=[{"mode": "server", "security": SECURITY, "resource": list(resources) or None}],
    )


def merge_capabilities(statements: Iterable[Mapping[str, Any]], *, base_url: str) -> CapabilityStatement:
    """One CapabilityStatement out of the services' own: their server resources side by side
    (the first statement describing a resource type wins)."""
    resources: dict[str, Mapping[str, Any]] = {}
    for statement in statements:
        for rest in statement.get("rest") or ():
            if rest.get("mode") != "server":
                continue
            for resource in rest.get("resource") or ():
                resources.setdefault(resource["type"], resource)
    return capability_statement(list(resources.values()), base_url=base_url)


def fhir_router(resources: Sequence[Mapping[str, Any]]) -> APIRouter:
    """A service's FHIR router (prefix ``/fhir``) with its own public ``GET /fhir/metadata``: the
    part of the gateway's CapabilityStatement that the service serves.

    FHIR clients read the CapabilityStatement, not OpenAPI: the routes stay out of the OpenAPI
    documents, whose overview links ``/fhir/metadata`` instead (gateway/docs)."""
    router = APIRouter(prefix=BASE_PATH, include_in_schema=False)

    @router.get("/metadata", response_class=FhirResponse)
    async def metadata(request: Request) -> FhirResponse:
        return FhirResponse(capability_statement(resources, base_url=fhir_base(request)))

    return router


# -- resources in request bodies ---------------------------------------------------------------


def invalid_resource(field: str, message: str) -> RequestValidationError:
    """A 422 about one element of a posted resource (``errors: [{field, message}]``, then an
    OperationOutcome issue with that element as its ``expression``)."""
    return RequestValidationError([{"loc": ("body", field), "msg": message, "type": "value_error"}])


def parse_resource(model: type[ResourceT], body: Any) -> ResourceT:
    """``body`` (parsed JSON) as a ``model`` resource, validated against the FHIR definitions;
    another resource type, or an invalid resource, is a 422 naming what is wrong."""
    expected = model.get_resource_type()
    if not isinstance(body, dict) or body.get("resourceType") != expected:
        raise invalid_resource("resourceType", f"the body must be a FHIR {expected} resource")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise RequestValidationError(
            [
                {"loc": ("body", *error["loc"]), "msg": error["msg"], "type": error["type"]}
                for error in exc.errors()
            ]
        ) from None
