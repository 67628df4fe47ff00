"""Reschedules race bookings and lose nothing (spec/API.md, "Rescheduling, history and safe
retries"; docs/booking-protocol.md): of many bookings and reschedules into one timeslot at the
same moment exactly one wins, also with two replicas of booking and scheduling; every loser
keeps its appointment where it was; a reschedule made while the broker refuses messages is
applied at scheduling once it is back.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from .api import User, new_user, problem
from .stack import Stack, StackFactory, wait_until
from .test_appointments import appointment, booked, free_timeslot_ids, new_timeslot, wait_until_free
from .test_booking_race import SMALL_POOLS, broker_refusing_messages, query, register_patients

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


@pytest.fixture(scope="module")
def replicated(stacks: StackFactory) -> Iterator[Stack]:
    stack = stacks.start("reschedule_replicas", replicas={"booking": 2, "scheduling": 2}, env=SMALL_POOLS)
    yield stack
    stack.close()


def test_with_two_replicas_of_booking_and_scheduling_exactly_one_still_wins(replicated):
    doctor = new_user(replicated, "doctor", full_name="Remy Replica")
    target, results = race(replicated, doctor)
    assert_one_winner_and_nothing_lost(replicated, doctor, target, results)


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


@pytest.fixture(scope="module")
def faults(stacks: StackFactory) -> Iterator[Stack]:
    stack = stacks.start("reschedule_faults", env=SMALL_POOLS)
    yield stack
    stack.close()


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
        [(published_at,)] = query(
            faults,
            "booking",
            "SELECT published_at FROM outbox_events WHERE event_type = 'booking.appointment.rescheduled'"
            " AND payload -> 'data' ->> 'appointment_id' = :id",
            id=str(made["id"]),
        )
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
