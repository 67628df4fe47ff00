"""Booking and rescheduling never double-book and never leave anything half-done: many patients
at once, bookings and reschedules racing for one timeslot, a broker that refuses messages, a
booking-service that dies between hold and commit, and duplicated events (spec/API.md,
"Rescheduling, history and safe retries"; docs/booking-protocol.md). Every loser of a race
keeps its appointment where it was. The same races with two replicas of every service are in
test_resilience.py, on its stack of replicas.

One module for both, so that the stack with faults starts once.

Fault tests look inside the services' databases only to observe what a client cannot
see (whether a timeslot is held or booked); they act only through the gateway, the
services' own ports and the broker, as an operator's tools would, and in one test through a
long transaction on booking's database holding a row lock, as an operator's session might.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import pika
import pytest
from sqlalchemy import create_engine, text

from chassis.settings import normalise_database_url

from .api import User, new_user, problem
from .stack import SERVICES, Stack, StackFactory, wait_until
from .test_appointments import (
    EVENT_DEADLINE,
    appointment,
    book,
    booked,
    cancel,
    free_timeslot_ids,
    new_timeslot,
    wait_until_free,
)

PATIENTS = 50
# Extra stacks share one PostgreSQL server (100 connections) with the main stack and with
# other test runs: small pools keep them within it; requests wait for a connection instead.
SMALL_POOLS = {"DB_POOL_SIZE": "2", "DB_MAX_OVERFLOW": "2"}
RABBITMQCTL = os.environ.get("RABBITMQCTL", "rabbitmqctl")


def register_patients(stack: Stack, count: int) -> list[User]:
    with ThreadPoolExecutor(max_workers=10) as pool:
        return list(pool.map(lambda i: new_user(stack, "patient", full_name=f"Racer {i}"), range(count)))


def book_all_at_once(stack: Stack, patients: list[User], timeslot_id: int) -> list[tuple[int, str]]:
    """Every patient books ``timeslot_id`` at the same moment; (status, request id) of each answer."""
    clients = [stack.client(p.access, timeout=60) for p in patients]
    start = threading.Barrier(len(clients))

    def attempt(client: httpx.Client) -> tuple[int, str]:
        request_id = uuid.uuid4().hex
        start.wait()
        response = client.post(
            "/api/appointments/", json={"timeslot_id": timeslot_id}, headers={"X-Request-Id": request_id}
        )
        if response.status_code != 201:
            problem(response, 409)
        return response.status_code, request_id

    try:
        with ThreadPoolExecutor(max_workers=len(clients)) as pool:
            return list(pool.map(attempt, clients))
    finally:
        for client in clients:
            client.close()


def assert_exactly_one_winner(
    stack: Stack, doctor: User, timeslot_id: int, results: list[tuple[int, str]]
) -> None:
    statuses = sorted(status for status, _ in results)
    assert statuses == [201] + [409] * (len(results) - 1)
    with stack.client(doctor.access) as client:
        mine = client.get("/api/appointments/me/").json()
    assert [a["timeslot_id"] for a in mine["results"]] == [timeslot_id]
    assert timeslot_id not in free_timeslot_ids(stack, new_user(stack, "patient"), doctor.id)


def test_fifty_patients_booking_one_timeslot_at_once_get_exactly_one_appointment(stack, doctor):
    patients = register_patients(stack, PATIENTS)
    slot = new_timeslot(stack, doctor)
    assert_exactly_one_winner(stack, doctor, slot["id"], book_all_at_once(stack, patients, slot["id"]))


# -- faults ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def faults(stacks: StackFactory) -> Iterator[Stack]:
    # Short holds, so the sweeper's work shows within the test.
    stack = stacks.start(
        "booking_faults", env={**SMALL_POOLS, "HOLD_SECONDS": "3", "HOLD_SWEEP_INTERVAL_SECONDS": "0.5"}
    )
    yield stack
    stack.close()


def rabbitmqctl(*args: str) -> str:
    result = subprocess.run(
        [RABBITMQCTL, "-q", *args], check=True, capture_output=True, text=True, timeout=60
    )
    return result.stdout


def vhost_and_user(stack: Stack) -> tuple[str, str]:
    parts = urlsplit(stack.amqp_url)
    return unquote(parts.path.lstrip("/")) or "/", parts.username or "guest"


@contextmanager
def broker_refusing_messages(stack: Stack) -> Iterator[None]:
    """The stack's broker takes no message (as under a memory alarm) until the block ends.

    Write permission on the stack's vhost is withdrawn from every user (the administrator and
    each service's own) and its connections are closed, so nothing can be published or consumed;
    connections still open, so health checks pass. Each user gets its own permissions back.
    """
    vhost, _ = vhost_and_user(stack)
    before = json.loads(rabbitmqctl("list_permissions", "-p", vhost, "--formatter", "json"))
    assert len(before) > len(SERVICES)  # the administrator and each service's own user
    for entry in before:
        rabbitmqctl("set_permissions", "-p", vhost, entry["user"], entry["configure"], "^$", entry["read"])
    rabbitmqctl("close_all_connections", "-p", vhost, "e2e: broker refusing messages")
    try:
        yield
    finally:
        for entry in before:
            rabbitmqctl(
                "set_permissions",
                "-p",
                vhost,
                entry["user"],
                entry["configure"],
                entry["write"],
                entry["read"],
            )


def query(stack: Stack, service: str, sql: str, **params: Any) -> list[Any]:
    engine = create_engine(normalise_database_url(stack.database_urls[service]))
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(sql), params))
    finally:
        engine.dispose()


def outbox_row(stack: Stack, event_type: str, appointment_id: int) -> Any:
    """booking's outbox row (id, published_at) of the one ``event_type`` event of an appointment."""
    [row] = query(
        stack,
        "booking",
        "SELECT id, published_at FROM outbox_events WHERE event_type = :type"
        " AND payload -> 'data' ->> 'appointment_id' = :id",
        type=event_type,
        id=str(appointment_id),
    )
    return row


def test_a_booking_made_while_the_broker_refuses_messages_is_booked_at_scheduling_when_it_is_back(faults):
    patient, doctor = new_user(faults, "patient"), new_user(faults, "doctor")
    slot = new_timeslot(faults, doctor)

    with broker_refusing_messages(faults):
        made = booked(faults, patient, slot["id"])
        assert slot["id"] not in free_timeslot_ids(faults, patient, doctor.id)
        event_id, published_at = outbox_row(faults, "booking.appointment.booked", made["id"])
        assert published_at is None  # the broker really refused it

    [(reservation_id,)] = query(
        faults, "booking", "SELECT reservation_id FROM appointments WHERE id = :id", id=made["id"]
    )
    wait_until(
        lambda: query(faults, "scheduling", "SELECT 1 FROM processed_events WHERE event_id = :e", e=event_id),
        timeout=60,
        what="scheduling received the booked event",
    )
    [(state, holder)] = query(
        faults, "scheduling", "SELECT state, reservation_id FROM timeslots WHERE id = :id", id=slot["id"]
    )
    assert (state, holder) == ("booked", reservation_id)
    assert appointment(faults, patient.access, made["id"]).json()["status"] == "pending"


def test_a_hold_left_by_a_booking_service_that_died_is_freed_by_the_sweeper_once_booking_answers(faults):
    patient, doctor = new_user(faults, "patient"), new_user(faults, "doctor")
    slot = new_timeslot(faults, doctor)
    # What booking does first (with its service token); then it "dies" before storing the appointment.
    with httpx.Client(base_url=faults.service_url("scheduling"), timeout=10) as scheduling:
        hold = scheduling.post(
            f"/internal/timeslots/{slot['id']}/hold",
            json={"reservation_id": str(uuid.uuid4()), "patient_id": patient.id},
            headers=faults.service_headers("booking", "scheduling"),
        )
    assert hold.status_code == 200, hold.text
    faults.kill("booking")
    try:
        # Past the hold's expiry the sweeper cannot reach booking: it must not free blindly.
        watch_until = datetime.fromisoformat(hold.json()["held_until"]) + timedelta(seconds=2)
        while datetime.now(UTC) < watch_until:
            assert slot["id"] not in free_timeslot_ids(faults, patient, doctor.id)
            time.sleep(0.2)
    finally:
        faults.start("booking")

    wait_until_free(faults, patient, doctor.id, slot["id"])
    booked(faults, patient, slot["id"])


def test_a_booking_slower_than_its_hold_is_refused_and_the_timeslot_stays_bookable(faults):
    # booking's transaction waits (here for an operator's long transaction on the patient's row)
    # past the hold's expiry; the sweeper asks booking, hears that nothing was stored, and frees
    # the timeslot. That answer must stay true: the booking, once it can go on, is refused at its
    # commit (503, nothing stored) instead of storing an appointment whose timeslot is free.
    patient, doctor = new_user(faults, "patient"), new_user(faults, "doctor")
    slot = new_timeslot(faults, doctor)
    wait_until(
        lambda: query(faults, "booking", "SELECT 1 FROM users WHERE id = :id", id=patient.id),
        timeout=EVENT_DEADLINE,
        what="booking to know the patient",
    )

    def state() -> str:
        [(value,)] = query(faults, "scheduling", "SELECT state FROM timeslots WHERE id = :id", id=slot["id"])
        return value

    engine = create_engine(normalise_database_url(faults.database_urls["booking"]))
    try:
        with ThreadPoolExecutor(max_workers=1) as pool, engine.connect() as operator:
            operator.execute(text("SELECT 1 FROM users WHERE id = :id FOR UPDATE"), {"id": patient.id})
            answer = pool.submit(book, faults, patient, slot["id"])
            wait_until(lambda: state() == "held", what="booking to hold the timeslot")
            wait_until(lambda: state() == "available", what="the sweeper to free the expired hold")
            operator.commit()
            refused = answer.result(timeout=30)
    finally:
        engine.dispose()

    assert problem(refused, 503)["code"] == "hold_expired"
    with faults.client(patient.access) as client:
        assert client.get("/api/appointments/me/").json()["results"] == []
    assert state() == "available"
    booked(faults, patient, slot["id"])  # trying again books it


def publish_again(stack: Stack, envelopes: list[dict[str, Any]]) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(stack.amqp_url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        for envelope in envelopes:
            channel.basic_publish(
                "clinic.events",
                envelope["event_type"],
                json.dumps(envelope).encode(),
                pika.BasicProperties(
                    message_id=envelope["event_id"],
                    type=envelope["event_type"],
                    content_type="application/json",
                    delivery_mode=pika.DeliveryMode.Persistent,
                ),  # fmt: skip
                mandatory=True,
            )
    finally:
        connection.close()


def scheduling_queue_is_drained(stack: Stack) -> bool:
    vhost, _ = vhost_and_user(stack)
    for line in rabbitmqctl("list_queues", "-p", vhost, "name", "messages").splitlines():
        name, _, messages = line.partition("\t")
        if name == "scheduling.events":
            return messages.strip() == "0"
    return False


def test_duplicated_booked_and_cancelled_events_change_nothing(stack, patient, doctor):
    other_patient = new_user(stack, "patient", full_name="Otto Other")
    slot = new_timeslot(stack, doctor)
    first = booked(stack, patient, slot["id"])
    assert cancel(stack, patient.access, first["id"]).status_code == 204
    wait_until_free(stack, other_patient, doctor.id, slot["id"])
    second = booked(stack, other_patient, slot["id"])
    old = [
        row[0]
        for row in query(
            stack,
            "booking",
            "SELECT payload FROM outbox_events"
            " WHERE payload -> 'data' ->> 'appointment_id' = :id ORDER BY created_at",
            id=str(first["id"]),
        )
    ]
    assert [e["event_type"] for e in old] == ["booking.appointment.booked", "booking.appointment.cancelled"]

    # The very same events again (a relay redelivery), and copies under new ids (a replay).
    copies = [{**e, "event_id": str(uuid.uuid4())} for e in old]
    publish_again(stack, old + copies + old)
    wait_until(
        lambda: scheduling_queue_is_drained(stack), timeout=EVENT_DEADLINE, what="scheduling consumed them"
    )

    assert slot["id"] not in free_timeslot_ids(stack, patient, doctor.id)
    assert appointment(stack, other_patient.access, second["id"]).json()["status"] == "pending"
    assert problem(book(stack, patient, slot["id"]), 409)["code"] == "timeslot_not_available"


# -- reschedules racing bookings ------------------------------------------------------------

BOOKERS = 20
MOVERS = 10


def race(stack: Stack, doctor: User) -> tuple[dict[str, Any], list[tuple[str, int, dict[str, Any] | None]]]:
    """``BOOKERS`` patients book and ``MOVERS`` patients move their appointment into one timeslot
    at the same moment; the target and, per request, (kind, status, the mover's appointment before)."""
    target = new_timeslot(stack, doctor)
    bookers = register_patients(stack, BOOKERS)
    movers = register_patients(stack, MOVERS)
    before = {mover.id: booked(stack, mover, new_timeslot(stack, doctor)["id"]) for mover in movers}
    start = threading.Barrier(BOOKERS + MOVERS)

    def attempt(kind: str, user: User) -> tuple[str, int, dict[str, Any] | None]:
        with stack.client(user.access, timeout=60) as client:
            start.wait()
            if kind == "book":
                response = client.post("/api/appointments/", json={"timeslot_id": target["id"]})
            else:
                response = client.post(
                    f"/api/appointments/{before[user.id]['id']}/reschedule/",
                    json={"timeslot_id": target["id"]},
                    headers={"X-Request-Id": uuid.uuid4().hex},
                )
        if response.status_code not in (200, 201):
            problem(response, 409)
        return kind, response.status_code, before.get(user.id)

    jobs = [("book", u) for u in bookers] + [("move", u) for u in movers]
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        results = list(pool.map(lambda job: attempt(*job), jobs))
    return target, results


def assert_one_winner_and_nothing_lost(
    stack: Stack, doctor: User, target: dict[str, Any], results: list[tuple[str, int, dict[str, Any] | None]]
) -> None:
    winners = [r for r in results if r[1] in (200, 201)]
    assert len(winners) == 1, sorted(r[1] for r in results)
    with stack.client(doctor.access) as client:
        mine = client.get("/api/appointments/me/", params={"page_size": 100}).json()["results"]
    active = [a for a in mine if a["status"] in ("pending", "confirmed")]
    assert [a["timeslot_id"] for a in active].count(target["id"]) == 1
    # Every mover that lost still has its appointment, on its old timeslot; the winner's old
    # timeslot (if a mover won) is free again.
    by_id = {a["id"]: a for a in active}
    viewer = new_user(stack, "patient")
    for kind, status, before in results:
        if kind != "move":
            continue
        now = by_id[before["id"]]
        if status == 200:
            assert now["timeslot_id"] == target["id"]
            wait_until_free(stack, viewer, doctor.id, before["timeslot_id"])
        else:
            assert now["timeslot_id"] == before["timeslot_id"]
            assert before["timeslot_id"] not in free_timeslot_ids(stack, viewer, doctor.id)
    assert target["id"] not in free_timeslot_ids(stack, viewer, doctor.id)


def test_of_bookings_and_reschedules_racing_for_one_timeslot_exactly_one_wins(stack):
    doctor = new_user(stack, "doctor", full_name="Rhea Race")
    target, results = race(stack, doctor)
    assert_one_winner_and_nothing_lost(stack, doctor, target, results)


def test_concurrent_moves_of_one_appointment_leave_it_on_exactly_one_timeslot(stack, patient, doctor):
    made = booked(stack, patient, new_timeslot(stack, doctor)["id"])
    targets = [new_timeslot(stack, doctor) for _ in range(5)]
    start = threading.Barrier(len(targets))

    def move(target: dict[str, Any]) -> int:
        with stack.client(patient.access, timeout=60) as client:
            start.wait()
            return client.post(
                f"/api/appointments/{made['id']}/reschedule/", json={"timeslot_id": target["id"]}
            ).status_code

    with ThreadPoolExecutor(max_workers=len(targets)) as pool:
        statuses = list(pool.map(move, targets))
    assert set(statuses) <= {200, 409}
    final = appointment(stack, patient.access, made["id"]).json()["timeslot_id"]
    others = {t["id"] for t in targets} - {final} | {made["timeslot_id"]}
    viewer = new_user(stack, "patient")
    wait_until(
        lambda: others <= set(free_timeslot_ids(stack, viewer, doctor.id)),
        timeout=30,
        what="every timeslot but the final one free",
    )
    assert final not in free_timeslot_ids(stack, viewer, doctor.id)


def test_a_reschedule_made_while_the_broker_refuses_messages_is_applied_when_it_is_back(faults):
    patient, doctor = new_user(faults, "patient"), new_user(faults, "doctor")
    first, second = new_timeslot(faults, doctor), new_timeslot(faults, doctor)
    made = booked(faults, patient, first["id"])
    wait_until(
        lambda: query(
            faults,
            "scheduling",
            "SELECT 1 FROM timeslots WHERE id = :id AND state = 'booked'",
            id=first["id"],
        ),
        timeout=30,
        what="the booking confirmed at scheduling",
    )

    with broker_refusing_messages(faults):
        with faults.client(patient.access) as client:
            moved = client.post(
                f"/api/appointments/{made['id']}/reschedule/", json={"timeslot_id": second["id"]}
            )
        assert moved.status_code == 200, moved.text
        _, published_at = outbox_row(faults, "booking.appointment.rescheduled", made["id"])
        assert published_at is None  # the broker really refused it
        # The client already sees the move; the new timeslot is held, not free.
        assert second["id"] not in free_timeslot_ids(faults, patient, doctor.id)

    [(reservation_id,)] = query(
        faults, "booking", "SELECT reservation_id FROM appointments WHERE id = :id", id=made["id"]
    )
    wait_until(
        lambda: query(
            faults,
            "scheduling",
            "SELECT 1 FROM timeslots WHERE id = :id AND state = 'booked' AND reservation_id = :r",
            id=second["id"],
            r=reservation_id,
        ),
        timeout=60,
        what="the new timeslot booked at scheduling",
    )
    wait_until_free(faults, patient, doctor.id, first["id"])
    assert appointment(faults, patient.access, made["id"]).json()["timeslot_id"] == second["id"]
