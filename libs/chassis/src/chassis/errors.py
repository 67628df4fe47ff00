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

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("chassis.errors")

PROBLEM_JSON = "application/problem+json"


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
        for klass in type(exc).__mro__:
            if klass in status_of:
                return status_of[klass]
        return 400

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
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        if exc.status_code == 404 and detail == "Not Found":
            detail = "No such resource."
        elif exc.status_code == 405 and detail == "Method Not Allowed":
            detail = "This method is not allowed on this resource."
        return problem(exc.status_code, detail, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return problem(500, "Something went wrong on our side. It has been logged; please try again later.")


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries documenting problem+json errors of an operation."""
    return {
        status: {
            "description": HTTPStatus(status).phrase,
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }
