"""The common wiring of every service's FastAPI application."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack, asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chassis.auth import TokenVerifier
from chassis.db import Database
from chassis.errors import DomainError, install_problem_handlers
from chassis.fhir import FhirErrors
from chassis.guards import RequestGuard, UnexpectedErrors
from chassis.health import Check, health_router
from chassis.metrics import instrument, metrics_server
from chassis.observability import RequestContextMiddleware
from chassis.shutdown import drain_on_sigterm
from chassis.tracing import FASTAPI_TELEMETRY, TraceContextMiddleware, configure_tracing

Hook = Callable[[FastAPI], AbstractContextManager[Any]]

# The largest request body a service reads (the longest legitimate one, a doctor's bio, is ~8 KiB).
MAX_BODY_BYTES = 1024 * 1024

PROBLEM_SCHEMA = {
    "title": "Problem",
    "type": "object",
    "description": "An RFC 9457 problem detail.",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "example": "about:blank"},
        "title": {"type": "string", "example": "Conflict"},
        "status": {"type": "integer", "example": 409},
        "detail": {"type": "string", "example": "This timeslot is already taken."},
        "code": {"type": "string", "example": "timeslot_not_available"},
        "errors": {
            "type": "array",
            "description": "Validation errors, one per offending field.",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}


class OptionalTrailingSlash:
    """Serve ``/api/x`` exactly as ``/api/x/``: canonical paths end with a slash.

    Rewriting before routing (instead of a redirect) keeps POST bodies and
    clients that do not follow redirects working.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if path.startswith("/api/") and not path.endswith("/") and "." not in path.rsplit("/", 1)[-1]:
                scope = dict(scope, path=path + "/", raw_path=None)
        await self.app(scope, receive, send)


class HeadAsGet:
    """Answer ``HEAD`` as ``GET`` without its body: every resource that serves GET serves HEAD
    (RFC 9110, 9.3.2), with GET's status and headers, Content-Length included. FastAPI routes
    declare GET only. Inside the access log and the metrics, which see the HEAD it was.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def without_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app(dict(scope, method="GET"), receive, without_body)


_startup_frozen = False


def _freeze_startup_objects() -> None:
    """Keep what a service loads at start-up out of the garbage collector's full passes.

    Modules, the app and its routes (some 120,000 objects) live as long as the process, yet
    a full collection visits them all: tens of milliseconds during which no request moves,
    each time one runs. Collected once, then frozen, they are never visited again. Once per
    process (test suites start many apps in one).
    """
    global _startup_frozen
    if not _startup_frozen:
        _startup_frozen = True
        gc.collect()
        gc.freeze()


def create_service_app(
    *,
    name: str,
    title: str,
    description: str,
    version: str = "1.0.0",
    routers: Sequence[APIRouter],
    status_of: Mapping[type[DomainError], int],
    token_verifier: TokenVerifier,
    readiness: Mapping[str, Check],
    hooks: Sequence[Hook] = (),
    openapi_tags: list[dict[str, Any]] | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    database: Database | None = None,
) -> FastAPI:
    """A FastAPI app with the chassis wiring.

    ``hooks`` are context managers entered at start-up and left at shutdown, in
    reverse order (the outbox relay, the consumers, the hold sweeper ...); the
    metrics server (``chassis.metrics``, on ``METRICS_PORT`` of ``app.state.settings``)
    runs around them. With a
    ``database``, the app has it as ``app.state.db`` and, while it runs, its hot-read
    pool as ``app.state.reads`` (``chassis.reads``, bound to the app's event loop); at
    shutdown both pools close their connections.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        reads = database.fast_reads() if database is not None else None
        if reads is not None:
            await reads.open()
            app.state.reads = reads
        try:
            with ExitStack() as stack:
                # /metrics on METRICS_PORT (app.state.settings), before the hooks that add collectors.
                stack.enter_context(metrics_server(app))
                for hook in hooks:
                    stack.enter_context(hook(app))
                # SIGTERM: not ready first, then uvicorn's graceful shutdown (chassis.shutdown).
                stack.enter_context(drain_on_sigterm(app))
                _freeze_startup_objects()
                yield
        finally:
            if reads is not None:
                await reads.close()
            if database is not None:
                # The pool's connections go now, not whenever the app is garbage-collected (a
                # test suite that starts an app per test would run PostgreSQL out of slots).
                database.dispose()

    configure_tracing(name)
    app = FastAPI(
        title=title,
        description=description,
        version=version,
        openapi_url=f"/api/schema/{name}/openapi.json",
        docs_url=None,
        redoc_url=None,
        redirect_slashes=False,
        lifespan=lifespan,
        openapi_tags=openapi_tags,
        telemetry=FASTAPI_TELEMETRY,
    )
    app.state.service_name = name
    app.state.token_verifier = token_verifier
    if database is not None:
        app.state.db = database
    install_problem_handlers(app, status_of)
    for router in routers:
        app.include_router(router)
    app.include_router(health_router(readiness))
    # Innermost first: an unexpected error still gets the request id and the access log line.
    app.add_middleware(HeadAsGet)
    app.add_middleware(UnexpectedErrors)
    app.add_middleware(RequestGuard, max_body_bytes=max_body_bytes)
    # Errors of FHIR requests (/fhir/...) as OperationOutcome resources instead of problem+json.
    app.add_middleware(FhirErrors)
    # Counted and timed by route template (chassis.metrics), all answers included.
    instrument(app)
    app.add_middleware(RequestContextMiddleware)
    # Outside the access log line, so that the line carries the request's trace id.
    app.add_middleware(TraceContextMiddleware)
    app.add_middleware(OptionalTrailingSlash)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
                tags=app.openapi_tags,
            )
            schemas = schema.setdefault("components", {}).setdefault("schemas", {})
            schemas["Problem"] = PROBLEM_SCHEMA
            _document_problems(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _document_problems(schema: dict[str, Any]) -> None:
    """Errors are problem+json: say so for FastAPI's generated 422 responses too.

    Every operation that takes a body may also answer 400 (not JSON), 413 (too large)
    and 415 (not ``application/json``): ``RequestGuard`` and the JSON parsing answer them.
    """
    problem_content = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    body_problems = {
        "400": "The body is not valid JSON",
        "413": "The body is too large",
        "415": "The body is not application/json",
    }
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.get("responses", {})
            if "422" in responses:
                responses["422"] = {"description": "Validation error", "content": problem_content}
            if "requestBody" in operation:
                for status, description in body_problems.items():
                    responses.setdefault(status, {"description": description, "content": problem_content})
    for name in ("HTTPValidationError", "ValidationError"):
        schema["components"]["schemas"].pop(name, None)
