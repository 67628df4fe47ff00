"""What an operator sees of a booking: Prometheus metrics of every process, and one trace.

A stack of its own, with the gateway's tracing on and every process exporting spans to an
in-process OTLP receiver, logging at DEBUG (each request's access line); a real Prometheus
server (Debian's package) scrapes the gateway and every service process's metrics port. And
what an operator must not see: no personal data or secret in any log line or span.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from .api import User, login, new_user, problem, register
from .otlp import OtlpReceiver
from .prometheus import PrometheusServer
from .stack import SERVICES, Stack, wait_until
from .test_appointments import book, new_timeslot

EVENT_DEADLINE = 30.0


@pytest.fixture(scope="module")
def otlp() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def observed(stacks, otlp: OtlpReceiver) -> Iterator[Stack]:
    stack = stacks.start(
        "observed",
        env={
            "LOG_LEVEL": "DEBUG",
            "GATEWAY_TRACING_OTLP_ENDPOINT": f"{otlp.url}/v1/traces",
            "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.url,
            "OTEL_BSP_SCHEDULE_DELAY": "200",
        },
    )
    yield stack
    stack.close()


@pytest.fixture(scope="module")
def prometheus(observed: Stack, tmp_path_factory) -> Iterator[PrometheusServer]:
    scrape_configs: list[dict[str, Any]] = [
        {"job_name": "gateway", "static_configs": [{"targets": [observed.admin_url.removeprefix("http://")]}]}
    ]
    for service in SERVICES:
        targets = [
            observed.process(name).metrics_url.removeprefix("http://").removesuffix("/metrics")
            for name in observed.replicas(service)
        ]
        scrape_configs.append({"job_name": service, "static_configs": [{"targets": targets}]})
    with PrometheusServer(tmp_path_factory.mktemp("prometheus"), scrape_configs=scrape_configs) as server:
        server.wait_for_targets(len(scrape_configs))
        yield server


@pytest.fixture(scope="module")
def people(observed: Stack) -> tuple[User, User]:
    return new_user(observed, "patient", full_name="Pia Patient"), new_user(
        observed, "doctor", full_name="Dan Doctor"
    )


def json_lines(stack: Stack, process: str) -> list[dict[str, Any]]:
    lines = []
    for line in stack.process(process).log_text().splitlines():
        if line.startswith("{"):
            try:
                lines.append(json.loads(line))
            except ValueError:
                continue
    return lines


def test_prometheus_scrapes_every_process_and_counts_a_booking(observed, prometheus, people):
    patient, doctor = people
    before = prometheus.value('sum(clinic_bookings_total{job="booking"})')
    assert before is not None, "booking exports its booking counter from the start"
    timeslot = new_timeslot(observed, doctor)

    response = book(observed, patient, timeslot["id"])
    assert response.status_code == 201, response.text

    prometheus.wait_for_value('sum(clinic_bookings_total{job="booking"})', lambda v: v >= before + 1)
    prometheus.wait_for_value(
        'sum(http_requests_total{job="booking", handler="/api/appointments/", method="POST", status="2xx"})',
        lambda v: v >= 1,
    )
    prometheus.wait_for_value('sum(clinic_holds_created_total{job="scheduling"})', lambda v: v >= 1)
    # The event reached scheduling's consumer, which confirmed the hold.
    prometheus.wait_for_value(
        'sum(clinic_events_consumed_total{job="scheduling", event_type="booking.appointment.booked", '
        'outcome="handled"})',
        lambda v: v >= 1,
        timeout=EVENT_DEADLINE,
    )
    prometheus.wait_for_value('sum(clinic_holds_confirmed_total{job="scheduling"})', lambda v: v >= 1)
    # The outbox lag returns to zero: every committed event published, in every service.
    for service in ("identity", "doctor", "booking"):
        prometheus.wait_for_value(
            f'max(clinic_outbox_unpublished_events{{job="{service}"}})',
            lambda v: v == 0,
            timeout=EVENT_DEADLINE,
        )
        prometheus.wait_for_value(
            f'max(clinic_outbox_oldest_unpublished_age_seconds{{job="{service}"}})', lambda v: v == 0
        )
    # notification's scrape-time backlog is served (nothing subscribed: nothing undelivered).
    prometheus.wait_for_value(
        'max(clinic_notification_pending{job="notification", channel="webhook"})', lambda v: v == 0
    )
    # Nothing failed: empty dead-letter queues, no 5xx anywhere.
    prometheus.wait_for_value('max(clinic_consumer_queue_messages{queue="dlq"})', lambda v: v == 0)
    assert prometheus.query('http_requests_total{status="5xx"} > 0') == []
    # The gateway's own metrics count the booking under its router.
    assert prometheus.query('traefik_router_requests_total{code="201", method="POST"}')


def test_the_metrics_are_not_routed_by_the_gateway(observed):
    with observed.client() as client:
        assert client.get("/metrics").status_code == 404


def test_one_booking_is_one_trace_through_gateway_booking_scheduling_and_its_consumer(observed, otlp, people):
    patient, doctor = people
    timeslot = new_timeslot(observed, doctor)
    request_id = uuid.uuid4().hex
    with observed.client(patient.access, headers={"X-Request-Id": request_id}) as client:
        response = client.post("/api/appointments/", json={"timeslot_id": timeslot["id"]})
    assert response.status_code == 201, response.text

    # The gateway started the trace: its access log entry names it.
    trace_id = observed.access_log(request_id).get("TraceId")
    assert trace_id and len(trace_id) == 32, observed.access_log(request_id)

    def lines_of(process: str, **fields: str) -> list[dict[str, Any]]:
        return [
            line for line in json_lines(observed, process) if all(line.get(k) == v for k, v in fields.items())
        ]

    # booking's line of the request carries the gateway's trace id ...
    (booking_line,) = wait_until(
        lambda: lines_of("booking", request_id=request_id, message="POST /api/appointments/ 201"),
        timeout=10,
        what="booking's access line",
    )
    assert booking_line["trace_id"] == trace_id
    # ... scheduling's line of the hold booking asked for carries it too ...
    hold_lines = wait_until(
        lambda: [line for line in lines_of("scheduling", trace_id=trace_id) if "/hold" in line["message"]],
        timeout=10,
        what="scheduling's hold line in the trace",
    )
    assert hold_lines[0]["message"].startswith("POST /internal/timeslots/")
    # ... and so does the consumer's handling of the booked event, which also names the request.
    handled = wait_until(
        lambda: [
            line
            for line in lines_of("scheduling", trace_id=trace_id)
            if line["message"].startswith("scheduling consumer: handled booking.appointment.booked")
        ],
        timeout=EVENT_DEADLINE,
        what="scheduling's consumer line in the trace",
    )
    assert handled[0]["request_id"] == request_id

    # The exported spans form that one trace: gateway, booking, scheduling's hold and its consumer.
    def services_in_trace() -> set[str] | None:
        services = {span.service for span in otlp.trace(trace_id)}
        wanted = {"clinic-gateway", "clinic-booking", "clinic-scheduling"}
        # Each process exports its spans in its own batches: wait for scheduling's consumer span
        # itself, not for any consumer's (notification's may come first).
        consumers = {
            s.service for s in otlp.trace(trace_id) if s.name == "booking.appointment.booked process"
        }
        return services if wanted <= services and "clinic-scheduling" in consumers else None

    try:
        wait_until(services_in_trace, timeout=EVENT_DEADLINE, what=f"spans of trace {trace_id}")
    except TimeoutError:
        received = {(s.service, s.name) for s in otlp.spans}
        raise AssertionError(
            f"spans of trace {trace_id}: {otlp.trace(trace_id)}; received: {received}"
        ) from None
    spans = otlp.trace(trace_id)
    by_id = {span.span_id: span for span in spans}
    # Every consumer's span (scheduling's, notification's) hangs under booking's request span
    # (through the envelope's traceparent).
    consumer_spans = [s for s in spans if s.name == "booking.appointment.booked process"]
    assert "clinic-scheduling" in {span.service for span in consumer_spans}
    for consumer_span in consumer_spans:
        assert by_id[consumer_span.parent_span_id].service == "clinic-booking"


# -- no personal data in logs or traces --------------------------------------------------


def test_no_email_phone_password_reason_search_or_token_reaches_a_log_or_a_trace(
    observed: Stack, otlp: OtlpReceiver
):
    """Issue 13: emails, phone numbers, passwords, appointment reasons, search terms and tokens go
    through every service and the gateway (at DEBUG, tracing on), and none of them shows up in
    what any process logged or exported as a span, nor in an error body that did not need it."""
    stack = observed
    marker = uuid.uuid4().hex[:10]
    email = f"secret-{marker}@clinic.example.com"
    digits = str(uuid.uuid4().int)[:8]
    phone = f"+44 20 {digits[:4]} {digits[4:]}"
    password = f"Hidden-{marker}-pass"
    reason = f"embarrassing symptom {marker}"
    search = f"searchterm{marker}"
    marks = stack.log_marks()
    secrets: list[str] = [email, phone, password, reason, search]
    bodies: list[str] = []

    with stack.client() as client:
        patient = register(client, email=email, password=password, full_name="Pat Private", phone=phone)
        # Taken email (a unique violation inside identity), a weak password, wrong credentials.
        bodies.append(
            problem(
                client.post(
                    "/api/auth/register/",
                    json={"email": email, "password": password, "full_name": "Again", "phone": phone},
                ),
                409,
            )["detail"]
        )
        bodies.append(
            client.post(
                "/api/auth/register/",
                json={"email": f"weak-{email}", "password": "12345678", "full_name": "Weak", "phone": phone},
            ).text
        )
        bodies.append(
            problem(client.post("/api/auth/login/", json={"email": email, "password": password + "x"}), 401)[
                "detail"
            ]
        )
        tokens = login(client, email, password)
        secrets += [tokens["access"], tokens["refresh"]]
        refreshed = client.post("/api/auth/token/refresh/", json={"refresh": tokens["refresh"]})
        assert refreshed.status_code == 200, refreshed.text
        access = refreshed.json()["access"]
        secrets += [access, refreshed.json()["refresh"]]
    with stack.client(access) as client:
        assert client.patch("/api/auth/me/", json={"phone": phone + "1"}).status_code == 200
        bodies.append(
            problem(
                client.patch(
                    "/api/auth/me/",
                    json={"password": password + "-new", "current_password": password + "-wrong"},
                ),
                422,
            )["detail"]
        )
        assert client.get(f"/api/doctors/?search={search}").status_code == 200

    with stack.client() as client:
        doctor = register(client, role="doctor", full_name=f"Dr {marker}")
        doctor_access = login(client, doctor["email"], "Blue-Otter-42")["access"]
        admin_access = login(client, stack.admin.email, stack.admin.password)["access"]
    with stack.client(admin_access) as client:
        found = client.get("/api/users/", params={"search": email})
        assert found.status_code == 200 and found.json()["count"] == 1
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)
    with stack.client(doctor_access) as client:
        created = client.post(
            "/api/timeslots/",
            json={"start_time": start.isoformat(), "end_time": (start + timedelta(minutes=30)).isoformat()},
        )
        assert created.status_code == 201, created.text
    with stack.client(access) as client:
        booked = client.post(
            "/api/appointments/", json={"timeslot_id": created.json()["id"], "reason": reason}
        )
        assert booked.status_code == 201, booked.text
        # Refused input that names the reason in a field of the wrong type.
        bodies.append(client.post("/api/appointments/", json={"timeslot_id": reason, "reason": reason}).text)

    # Wait until booking's event reached scheduling (its consumer logged what it logs about it).
    def booked_at_scheduling() -> bool:
        with stack.client(access) as client:
            listing = client.get(f"/api/doctors/{doctor['id']}/timeslots/")
        return all(slot["id"] != created.json()["id"] for slot in listing.json()["results"])

    wait_until(booked_at_scheduling, timeout=20, what="the booked timeslot to leave the free listing")
    assert patient["phone"] == phone

    logs = {name: process.log_text(marks.get(name, 0)) for name, process in stack.processes.items()}
    assert logs["gateway"], "the gateway logged nothing: the test would prove nothing"
    assert any("/api/appointments/" in text for text in logs.values())
    for name, text in logs.items():
        leaked = [secret for secret in secrets if secret in text]
        assert not leaked, f"{name} logged {leaked}"
    spans = [span.text for span in otlp.spans]
    assert spans, "no process exported a span: the test would prove nothing"
    for span in spans:
        assert not [secret for secret in secrets if secret in span], span
    for body in bodies:
        assert not [secret for secret in secrets if secret in body], body
