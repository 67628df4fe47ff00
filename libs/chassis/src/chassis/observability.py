"""Structured JSON logging and request ids.

Every log line carries the service name and, inside a request, its request id;
the id comes from a well-formed incoming ``X-Request-Id`` (Traefik or a client)
or is generated, and is echoed on the response so a client can quote it. Inside a
trace (chassis.tracing: a request through the gateway, the handling of an event)
a line also carries its ``trace_id`` and ``span_id``.

No log line carries personal data or secrets: log ids, never emails, phone numbers,
appointment reasons, passwords or tokens. Engines hide statement parameters
(``hide_parameters``), and the formatters remove what PostgreSQL itself quotes of a
row in its error messages (``redact_database_values``).
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import sys
import time
from contextvars import ContextVar
from typing import Any

from opentelemetry import trace
from starlette.types import ASGIApp, Message, Receive, Scope, Send

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")

# What PostgreSQL quotes of the data in its error messages: a unique violation's key
# ("DETAIL:  Key (email)=(ada@example.com) already exists."), a check violation's whole row
# ("Failing row contains (...)"), a refused input value and the parameter it came from.
_DATABASE_VALUES = (
    (re.compile(r"^(\s*DETAIL:\s+).*$", re.MULTILINE), r"\1[redacted]"),
    (re.compile(r"^(\s*CONTEXT:\s+.*parameter \$\d+ = ).*$", re.MULTILINE), r"\1[redacted]"),
    (re.compile(r'(invalid input (?:syntax|value) for [^:\n]*: )"(?:[^"\n]|"")*"'), r"\1[redacted]"),
    (re.compile(r'((?:^|\s)value )"(?:[^"\n]|"")*"( is out of range)'), r"\1[redacted]\2"),
)


def redact_database_values(text: str) -> str:
    """``text`` without the values PostgreSQL's error messages quote (keys, rows, inputs).

    Constraint names and the statement stay, so the line still says what failed.
    """
    for pattern, replacement in _DATABASE_VALUES:
        text = pattern.sub(replacement, text)
    return text


_STANDARD_ATTRS = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "message": redact_database_values(record.getMessage()),
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            entry["trace_id"] = format(span_context.trace_id, "032x")
            entry["span_id"] = format(span_context.span_id, "016x")
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = redact_database_values(self.formatException(record.exc_info))
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """``LOG_FORMAT=text``: one plain line per record, database values redacted like the JSON's."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_database_values(super().format(record))


def configure_logging(service: str, level: str = "INFO", fmt: str = "json") -> None:
    """Send every logger (uvicorn's included) to stdout, as JSON lines by default."""
    handler = logging.StreamHandler(sys.stdout)
    if fmt == "json":
        handler.setFormatter(JsonFormatter(service))
        logging.Formatter.converter = time.gmtime
    else:
        handler.setFormatter(TextFormatter(f"%(asctime)s {service} %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    # Our middleware logs each request with its id and duration; uvicorn's access log would
    # repeat it. With no handler anywhere up its chain, uvicorn skips the line altogether
    # (it formats the client address and the path before the level check otherwise).
    access = logging.getLogger("uvicorn.access")
    access.handlers[:] = []
    access.propagate = False
    logging.getLogger("pika").setLevel(logging.WARNING)
    # The OTLP exporter's HTTP requests (chassis.tracing), one per batch of spans.
    logging.getLogger("urllib3").setLevel(logging.INFO)


# Request ids only need to be unique, not unpredictable: a per-process generator seeded from
# the OS is far cheaper per request than uuid4's system call, in the same 32-hex-digit format.
_request_ids = random.Random(os.urandom(16))
os.register_at_fork(after_in_child=lambda: _request_ids.seed(os.urandom(16)))


def new_request_id() -> str:
    return f"{_request_ids.getrandbits(128):032x}"


class RequestContextMiddleware:
    """Pure ASGI middleware: request id in, request id out, an access log line.

    The gateway's access log has every request (with its ``X-Request-Id``), so a service
    logs a request at INFO only when it is worth a look: an error status (4xx, 5xx) or a
    duration of ``slow_ms`` or more. Every other request is logged at DEBUG
    (``LOG_LEVEL=DEBUG`` shows them all); formatting and writing a JSON line for each
    request was a measurable share of a fast request's cost.
    """

    def __init__(self, app: ASGIApp, *, log_requests: bool = True, slow_ms: float = 500.0) -> None:
        self.app = app
        self.log_requests = log_requests
        self.slow_ms = slow_ms
        self.log = logging.getLogger("chassis.access")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = ""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
                break
        request_id = incoming if _VALID_REQUEST_ID.match(incoming) else new_request_id()
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if self.log_requests and not scope["path"].startswith("/health"):
                duration_ms = (time.perf_counter() - started) * 1000
                level = logging.INFO if status >= 400 or duration_ms >= self.slow_ms else logging.DEBUG
                if self.log.isEnabledFor(level):
                    self.log.log(
                        level,
                        "%s %s %s",
                        scope["method"],
                        scope["path"],
                        status,
                        extra={"status": status, "duration_ms": round(duration_ms, 2)},
                    )
            request_id_var.reset(token)
