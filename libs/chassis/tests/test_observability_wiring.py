"""What an operator reads from a service: ``/metrics`` on its own port, trace ids in log lines
and in the events it publishes (chassis.metrics, chassis.tracing, chassis.observability)."""

from __future__ import annotations

import io
import json
import logging
import socket
from types import SimpleNamespace

import httpx
import jsonschema
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from opentelemetry import context as otel_context
from opentelemetry import propagate
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client import generate_latest

from chassis.app import create_service_app
from chassis.messaging.contracts import ENVELOPE_SCHEMA, find_contracts_dir
from chassis.messaging.envelope import Envelope
from chassis.metrics import serve_metrics
from chassis.observability import JsonFormatter
from chassis.span_redaction import QueryValueRedactor
from chassis.testkit import TokenMinter, free_port
from chassis.tracing import current_traceparent, outgoing_headers

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"


def build_app(metrics_port: int | None, seen: list[dict]):
    router = APIRouter()

    @router.get("/api/things/{thing_id}/")
    def thing(thing_id: int) -> dict:
        seen.append({"traceparent": current_traceparent(), "outgoing": outgoing_headers()})
        logging.getLogger("test.things").warning("looked at thing %s", thing_id)
        return {"id": thing_id}

    app = service_app("things", router)
    app.state.settings = SimpleNamespace(metrics_port=metrics_port, metrics_host="127.0.0.1")
    return app


def service_app(name: str, router: APIRouter):
    return create_service_app(
        name=name,
        title=name,
        description=name,
        routers=[router],
        status_of={},
        token_verifier=TokenMinter().verifier(),
        readiness={},
    )


def test_metrics_are_served_on_their_own_port_by_route_template_and_not_on_the_api_port():
    port = free_port()
    with TestClient(build_app(port, [])) as client:
        for thing_id in (1, 2, 3):
            assert client.get(f"/api/things/{thing_id}/").status_code == 200
        assert client.get("/api/things/x/").status_code == 422
        assert client.get("/metrics").status_code == 404
        text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    ok = 'http_requests_total{handler="/api/things/{thing_id}/",method="GET",status="2xx"}'
    refused = 'http_requests_total{handler="/api/things/{thing_id}/",method="GET",status="4xx"}'
    assert float(text.split(ok)[1].split()[0]) >= 3
    assert float(text.split(refused)[1].split()[0]) >= 1
    assert 'http_request_duration_seconds_bucket{handler="/api/things/{thing_id}/"' in text
    assert "/api/things/1/" not in text, "raw paths would make a series per id"
    # Stopped with the app.
    try:
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1)
    except httpx.TransportError:
        pass
    else:
        raise AssertionError("the metrics server outlived its app")


def test_requests_are_counted_by_their_full_template_under_router_prefixes_with_bounded_labels():
    inner = APIRouter()

    @inner.delete("/{item_id:int}/", status_code=204)
    def remove(item_id: int) -> None:
        return None

    outer = APIRouter(prefix="/api/lists")
    outer.include_router(inner, prefix="/{list_id}/items")
    with TestClient(service_app("lists", outer)) as client:
        assert client.delete("/api/lists/7/items/12/").status_code == 204
        assert client.get("/api/lists/7/items/12/").status_code == 405
        assert client.get("/api/nowhere/31/").status_code == 404
        assert client.request("BREW", "/api/nowhere/32/").status_code in (404, 405)
        assert client.get("/health/live").status_code == 200
    text = generate_latest().decode()
    template = "/api/lists/{list_id}/items/{item_id:int}/"
    assert f'http_requests_total{{handler="{template}",method="DELETE",status="2xx"}}' in text
    assert f'http_requests_total{{handler="{template}",method="GET",status="4xx"}}' in text
    assert 'http_requests_total{handler="none",method="GET",status="4xx"}' in text
    assert 'http_requests_total{handler="none",method="other",status="4xx"}' in text
    assert "/api/nowhere/" not in text and "BREW" not in text, "unbounded labels"
    assert 'handler="/health' not in text, "health probes are not counted"


def test_a_second_process_of_a_service_takes_the_next_free_metrics_port():
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        stop = serve_metrics("127.0.0.1", port, tries=2)
        assert stop is not None
        try:
            assert httpx.get(f"http://127.0.0.1:{port + 1}/metrics").status_code == 200
        finally:
            stop()
        assert serve_metrics("127.0.0.1", port, tries=1) is None


def test_the_incoming_traceparent_is_the_requests_context_in_its_log_lines_and_calls():
    seen: list[dict] = []
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("things"))
    logging.getLogger("test.things").addHandler(handler)
    try:
        with TestClient(build_app(None, seen)) as client:
            assert client.get("/api/things/7/", headers={"traceparent": TRACEPARENT}).status_code == 200
            assert client.get("/api/things/8/").status_code == 200
    finally:
        logging.getLogger("test.things").removeHandler(handler)
    traced, untraced = (json.loads(line) for line in stream.getvalue().splitlines())
    assert traced["trace_id"] == TRACE_ID and "trace_id" not in untraced
    # Sent on to the next service, and written into the events, as the same trace.
    assert seen[0]["traceparent"].split("-")[1] == TRACE_ID
    assert seen[0]["outgoing"]["traceparent"].split("-")[1] == TRACE_ID
    assert seen[1] == {"traceparent": None, "outgoing": {}}


def test_the_envelope_carries_the_trace_context_and_drops_a_malformed_one():
    token = otel_context.attach(propagate.extract({"traceparent": TRACEPARENT}))
    try:
        envelope = Envelope.new("test.thing.done", {}, producer="things", traceparent=current_traceparent())
    finally:
        otel_context.detach(token)
    body = envelope.to_json()
    assert body["traceparent"] == TRACEPARENT
    schema = json.loads((find_contracts_dir(__file__) / ENVELOPE_SCHEMA).read_text())
    jsonschema.validate(body, schema)
    assert Envelope.from_json(body).traceparent == TRACEPARENT
    assert Envelope.from_json({**body, "traceparent": "not-a-trace"}).traceparent is None
    # No trace, no key: the envelope of an event caused outside any trace is as before.
    assert "traceparent" not in Envelope.new("test.thing.done", {}, producer="things").to_json()


def test_the_values_of_a_query_string_are_redacted_in_the_exported_server_span():
    # ?search= holds names and emails; a calendar feed's secret travels in its query string.
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(QueryValueRedactor())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = FastAPI(telemetry={"tracer_provider": provider, "metrics": False, "logs": False})

    @app.get("/api/doctors/")
    def doctors(search: str = "", page: int = 1) -> list[str]:
        return [search]

    with TestClient(app) as client:
        answer = client.get("/api/doctors/", params={"search": "alice@example.com", "page": 2, "flag": ""})
    assert answer.json() == ["alice@example.com"]  # the request itself keeps its values
    [span] = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert span.attributes["url.query"] == "search=REDACTED&page=REDACTED&flag=REDACTED"
    assert "alice" not in str(span.to_json())
