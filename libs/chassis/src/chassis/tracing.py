"""W3C trace context through the services, and OpenTelemetry traces when configured.

The gateway (Traefik's tracing) starts a trace and sends ``traceparent`` on; every service
continues it: FastAPI's own telemetry (while the SDK runs) or ``TraceContextMiddleware`` (while
it does not) makes the incoming context the request's; the internal HTTP clients send the
current context on (``outgoing_headers``, ``client_span``), ``add_event`` writes it into the
event envelope (``traceparent``) and the event consumer opens its span under the producer's
(``consumer_span``). Every JSON log line written inside one of these carries its ``trace_id``
(chassis.observability).

Off unless configured: with no OpenTelemetry SDK set up, the API's spans record nothing and
cost next to nothing, yet keep the incoming trace and span ids, so the ids still reach the
logs, the next service and the events. ``configure_tracing`` sets up the SDK, exporting over
OTLP/HTTP in batches, when the standard variables ask for it: ``OTEL_EXPORTER_OTLP_ENDPOINT``
(or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) set, or ``OTEL_TRACES_EXPORTER=otlp``/``console``;
``OTEL_SDK_DISABLED=true`` or ``OTEL_TRACES_EXPORTER=none`` keep it off. ``OTEL_SERVICE_NAME``
(default ``clinic-<service>``), ``OTEL_TRACES_SAMPLER`` and the rest are the SDK's own.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind
from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger("chassis.tracing")

_tracer = trace.get_tracer("clinic.chassis")
_configured = False


def tracing_requested(env: dict[str, str] | os._Environ[str] = os.environ) -> str | None:
    """The exporter the standard OTEL_* variables ask for (``otlp``, ``console``), or None: off."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none":
        return None
    if exporter in ("otlp", "console"):
        return exporter
    if env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return "otlp"
    return None


def configure_tracing(service: str) -> bool:
    """Set up the OpenTelemetry SDK for this process when OTEL_* asks for it (once); True if on."""
    global _configured
    exporter_name = tracing_requested()
    if exporter_name is None or _configured:
        return _configured
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    from chassis.span_redaction import QueryValueRedactor

    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: f"clinic-{service}"}
    provider = TracerProvider(resource=Resource.create(attributes))
    provider.add_span_processor(QueryValueRedactor())  # before the exporter's: it sees the result
    if exporter_name == "console":
        exporter: Any = ConsoleSpanExporter()
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()  # endpoint, headers, timeout: OTEL_EXPORTER_OTLP_*
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _configured = True
    log.info("tracing on: %s exporter", exporter_name)
    return True


def current_ids() -> tuple[str, str] | None:
    """The current trace id and span id (hex), or None outside any trace."""
    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return None
    return format(span_context.trace_id, "032x"), format(span_context.span_id, "016x")


def current_traceparent() -> str | None:
    """The current context as a W3C ``traceparent`` value, or None outside any trace."""
    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return None
    return f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-{int(span_context.trace_flags):02x}"


def outgoing_headers(headers: dict[str, str] | None = None) -> dict[str, str]:
    """``headers`` plus the current trace context (``traceparent``, ``tracestate``) to send on."""
    headers = {} if headers is None else headers
    propagate.inject(headers)
    return headers


def _extracted(traceparent: str | None, tracestate: str | None = None) -> otel_context.Context | None:
    if not traceparent:
        return None
    carrier = {"traceparent": traceparent}
    if tracestate:
        carrier["tracestate"] = tracestate
    return propagate.extract(carrier)


@contextmanager
def client_span(name: str, **attributes: Any) -> Iterator[Any]:
    """A client span around an outgoing call (send ``outgoing_headers()`` from inside it)."""
    with _tracer.start_as_current_span(name, kind=SpanKind.CLIENT, attributes=attributes) as span:
        yield span


@contextmanager
def consumer_span(event_type: str, traceparent: str | None, **attributes: Any) -> Iterator[Any]:
    """The span of handling one event, a child of the producer's context when the envelope has one."""
    parent = _extracted(traceparent)
    with _tracer.start_as_current_span(
        f"{event_type} process",
        context=parent,
        kind=SpanKind.CONSUMER,
        attributes={"messaging.system": "rabbitmq", "messaging.operation.type": "process", **attributes},
    ) as span:
        yield span


def is_health_probe(scope: Scope) -> bool:
    """Requests left out of traces: the orchestrator's health probes, every few seconds."""
    return scope.get("path", "").startswith("/health")


# FastAPI's own OpenTelemetry support (``FastAPI(telemetry=...)``): while the SDK is configured,
# it opens each request's server span, under the incoming context, around the whole middleware
# stack, and spans for the dependencies, the endpoint and the serialisation inside it.
FASTAPI_TELEMETRY = {"exclude": is_health_probe}


class TraceContextMiddleware:
    """Pure ASGI middleware: the incoming ``traceparent`` as the request's context when no SDK runs.

    With the SDK configured, FastAPI's own telemetry has already opened the request's server
    span (``FASTAPI_TELEMETRY``) and this passes through. Without it, the incoming context is
    made current as it is (no span, nothing recorded), so the request's log lines, its calls
    to other services and its events still carry the trace the gateway started.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or trace.get_current_span().get_span_context().is_valid:
            await self.app(scope, receive, send)
            return
        traceparent = tracestate = None
        for name, value in scope["headers"]:
            if name == b"traceparent":
                traceparent = value.decode("latin-1")
            elif name == b"tracestate":
                tracestate = value.decode("latin-1")
        incoming = _extracted(traceparent, tracestate)
        if incoming is None:
            await self.app(scope, receive, send)
            return
        token = otel_context.attach(incoming)
        try:
            await self.app(scope, receive, send)
        finally:
            otel_context.detach(token)
