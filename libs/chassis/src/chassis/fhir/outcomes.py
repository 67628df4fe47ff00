"""Errors of FHIR requests as ``OperationOutcome`` resources."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from fhir.resources.R4B.operationoutcome import OperationOutcome
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chassis.errors import PROBLEM_JSON
from chassis.fhir.resources import BASE_PATH, FHIR_JSON

# Machine-readable codes of Clinic's errors (the problem+json ``code``) in OperationOutcome issues.
PROBLEM_CODE_SYSTEM = "urn:clinic:problem-code"

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


def is_fhir_request(path: str, headers: Headers) -> bool:
    """Whether a request is (or, for the gateway's token check, is about) a FHIR request.

    ForwardAuth's check carries the checked request's path in ``X-Forwarded-Uri``; a path the
    gateway replaced (its not-found and unavailable pages) in ``X-Replaced-Path``. Either only
    chooses how an error is written, never whether it happens.
    """
    candidates = (path, headers.get("x-forwarded-uri", ""), headers.get("x-replaced-path", ""))
    return any(value == BASE_PATH or value.startswith(BASE_PATH + "/") for value in candidates)


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
