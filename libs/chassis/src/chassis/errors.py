"""RFC 9457 problem details for every error a service returns.

Services raise ``DomainError`` subclasses (each with a stable ``code``) from their
domain and use-case layers; one table per service maps those classes to HTTP
statuses and ``install_problem_handlers`` renders everything, including FastAPI's
own validation errors and unexpected exceptions, as ``application/problem+json``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

log = logging.getLogger("chassis.errors")

PROBLEM_JSON = "application/problem+json"
TOO_LARGE = "The request body is too large."
UNSUPPORTED_MEDIA_TYPE = "Send the request body as JSON, with Content-Type: application/json."
UNEXPECTED = "Something went wrong on our side. It has been logged; please try again later."


class DomainError(Exception):
    """A broken business rule or a missing resource, independent of HTTP.

    ``code`` is stable and machine-readable; the message is for humans.
    ``extra`` carries structured details (for example the offending times).
    """

    code = "domain_error"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class ProblemException(Exception):
    """An error raised at the HTTP edge with an explicit status (auth, gateway checks)."""

    def __init__(
        self, status: int, detail: str, *, code: str | None = None, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.code = code
        self.headers = dict(headers or {})


def problem(
    status: int,
    detail: str,
    *,
    code: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """Build a problem+json response."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if code:
        body["code"] = code
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=dict(headers or {}))


def _field_name(loc: Sequence[Any]) -> str:
    # FastAPI prefixes locations with "body"/"query"/"path"; clients want the field itself.
    parts = [str(p) for p in loc]
    if parts and parts[0] in {"body", "query", "path", "header", "cookie"}:
        parts = parts[1:]
    return ".".join(parts) or "body"


def _clean_message(error: Mapping[str, Any]) -> str:
    message = str(error.get("msg", "invalid value"))
    # Pydantic prefixes messages of custom validators with "Value error, ".
    return message.removeprefix("Value error, ").removeprefix("Assertion failed, ")


def validation_problem(errors: Sequence[Mapping[str, Any]]) -> JSONResponse:
    if any(e.get("type") == "json_invalid" for e in errors):
        return problem(400, "The request body is not valid JSON.", code="malformed_json")
    fields = [{"field": _field_name(e.get("loc", ())), "message": _clean_message(e)} for e in errors]
    summary = "; ".join(f"{f['field']}: {f['message']}" for f in fields[:5])
    return problem(422, f"The request is not valid: {summary}", code="validation_error", errors=fields)


def install_problem_handlers(app: FastAPI, status_of: Mapping[type[DomainError], int]) -> None:
    """Render every error of ``app`` as problem+json.

    ``status_of`` maps a service's domain error classes to HTTP statuses; a subclass
    not listed takes its nearest listed base class's status (else 400).
    """

    def status_for(exc: DomainError) -> int:
        if isinstance(getattr(exc, "status", None), int):  # an error relayed from another service
            return exc.status
        for klass in type(exc).__mro__:
            if klass in status_of:
                return status_of[klass]
        return 400

    # Others that answer for a request themselves (chassis.idempotency stores the answer) ask here.
    app.state.domain_status = status_for

    @app.exception_handler(DomainError)
    async def _domain(_: Request, exc: DomainError) -> JSONResponse:
        return problem(status_for(exc), exc.detail, code=exc.code, **exc.extra)

    @app.exception_handler(ProblemException)
    async def _explicit(_: Request, exc: ProblemException) -> JSONResponse:
        return problem(exc.status, exc.detail, code=exc.code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_problem(exc.errors())

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        headers = dict(getattr(exc, "headers", None) or {})
        code = None
        if exc.status_code == 404 and detail == "Not Found":
            detail = "No such resource."
        elif exc.status_code == 405:
            if detail == "Method Not Allowed":
                detail = "This method is not allowed on this resource."
            # Starlette names only the first route of the path; every method of the path is allowed.
            headers["Allow"] = ", ".join(sorted(_allowed_methods(request))) or headers.get("Allow", "")
        elif exc.status_code == 400 and detail == "There was an error parsing the body":
            detail, code = "The request body is not valid JSON.", "malformed_json"
        elif exc.status_code == 413:
            detail, code = TOO_LARGE, "body_too_large"
        return problem(exc.status_code, detail, code=code, headers=headers)

    async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
        # The database is down, restarting or out of connections (or the transaction was a
        # deadlock victim): transient, so a 503 the client may retry, not a 500.
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc)
        return problem(
            503,
            "The service cannot reach its database right now; please try again shortly.",
            code="database_unavailable",
            headers={"Retry-After": "1"},
        )

    # SQLAlchemy's wrappers (the engine) and psycopg's own errors (chassis.reads, whose
    # PoolTimeout is an OperationalError too).
    for unavailable in (OperationalError, InterfaceError, psycopg.OperationalError, psycopg.InterfaceError):
        app.add_exception_handler(unavailable, _database_unavailable)

    async def _data(request: Request, exc: Exception) -> JSONResponse:
        # PostgreSQL (or psycopg, before sending) refused a value of the request: a NUL
        # character, a number or a date out of its range. The client's input, not our bug.
        original = getattr(exc, "orig", exc)
        # The message quotes the refused value (the client's input): only its kind is logged.
        sqlstate = getattr(original, "sqlstate", None) or "-"
        log.warning(
            "refused a value on %s %s: %s (SQLSTATE %s)",
            request.method,
            request.url.path,
            type(original).__name__,
            sqlstate,
        )
        reason = str(original)
        if "NUL" in reason or "\\u0000" in reason:
            detail = "Text must not contain NUL (\\u0000) characters."
        else:
            detail = "A value of this request is out of the range this service can store or search for."
        return problem(422, detail, code="unstorable_value")

    app.add_exception_handler(DataError, _data)
    app.add_exception_handler(psycopg.DataError, _data)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return problem(500, UNEXPECTED)


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def _allowed_methods(request: Request) -> set[str]:
    """Every method some route of the app serves on the request's path."""
    routes = request.app.router.routes
    return {
        method
        for method in _METHODS
        if any(route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes)
    }


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries documenting problem+json errors of an operation."""
    return {
        status: {
            "description": HTTPStatus(status).phrase,
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }
