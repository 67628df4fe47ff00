"""The hold sweeper against a real HTTP server standing in for booking's reservation lookup.

booking-service is another project; a small FastAPI app served by uvicorn answers
``GET /internal/reservations/{id}`` the way booking's contract says. These tests
use their own database: the sweeper settles every expired hold it finds.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select

from chassis.auth import InvalidToken
from chassis.db import Database
from chassis.messaging.outbox import OutboxEvent
from chassis.testkit import ServerThread, TokenMinter, free_port
from chassis.testkit.http_contracts import http_contract
from chassis.timezones import utcnow
from scheduling.adapters.booking_client import BookingClient
from scheduling.cli import ALEMBIC_INI
from scheduling.domain import HoldOutcome
from scheduling.services.reservations import sweep_expired_holds


class BookingStandIn:
    """``GET /internal/reservations/{id}``: the stored status, else booking's 404 problem; every
    answer checked against ``contracts/http/booking.reservation.read.json``."""

    def __init__(self, minter: TokenMinter) -> None:
        self.statuses: dict[str, str] = {}
        self.asked: Counter[str] = Counter()
        verifier = minter.service_verifier("booking")
        contract = http_contract("booking.reservation.read")
        app = FastAPI()

        def answer(status: int, body: dict) -> JSONResponse:
            contract.check_response(status, body)
            media_type = "application/json" if status == 200 else "application/problem+json"
            return JSONResponse(body, status_code=status, media_type=media_type)

        @app.get("/internal/reservations/{reservation_id}")
        def reservation(reservation_id: str, request: Request) -> JSONResponse:
            # Like booking: only scheduling's service token is answered.
            try:
                caller = verifier.caller(request.headers.get("authorization", "").removeprefix("Bearer "))
            except InvalidToken:
                caller = None
            if caller != "scheduling":
                return answer(401, {"status": 401, "code": "not_authenticated"})
            self.asked[reservation_id] += 1
            status = self.statuses.get(reservation_id)
            if status is None:
                return answer(
                    404,
                    {"status": 404, "title": "Not Found", "detail": "none", "code": "reservation_not_found"},
                )
            body = {
                "reservation_id": reservation_id,
                "appointment_id": 1,
                "status": status,
                "takes_timeslot": status != "cancelled",  # booking's rule, as its contract states it
            }
            return answer(200, body)

        self.server = ServerThread(app)
        self.url = self.server.url


@pytest.fixture(scope="module")
def booking(minter) -> Iterator[BookingStandIn]:
    stand_in = BookingStandIn(minter)
    with stand_in.server:
        yield stand_in


@pytest.fixture(scope="module")
def sweeper_database_url(make_migrated_database) -> str:
    return make_migrated_database(ALEMBIC_INI, "scheduling_sweeper")


@pytest.fixture(scope="module")
def sweeper_db(sweeper_database_url) -> Iterator[Database]:
    database = Database(sweeper_database_url)
    yield database
    database.dispose()


@pytest.fixture(scope="module")
def client(make_client, sweeper_database_url):
    with make_client(database_url=sweeper_database_url) as client:
        yield client


@pytest.fixture
def held(client, new_id, callers, when, rfc3339, from_booking):
    """``held()`` → (timeslot, reservation id): a fresh timeslot held for a fresh reservation."""

    def make() -> tuple[dict, str]:
        doctor_id = new_id()
        start = when(90, 10)
        body = {"start_time": rfc3339(start), "end_time": rfc3339(start + timedelta(minutes=30))}
        timeslot = client.post(
            "/api/timeslots/", json=body, headers=callers("doctor", doctor_id).headers
        ).json()
        patient_id = new_id()
        reservation = str(uuid.uuid4())
        hold = {"reservation_id": reservation, "patient_id": patient_id}
        response = client.post(f"/internal/timeslots/{timeslot['id']}/hold", json=hold, headers=from_booking)
        assert response.status_code == 200
        return timeslot, reservation

    return make


def is_available(client, callers, timeslot) -> bool:
    response = client.get(
        f"/api/timeslots/{timeslot['id']}/", headers=callers("doctor", timeslot["doctor_id"]).headers
    )
    return response.json()["is_available"]


@pytest.fixture(scope="module")
def sweep(minter):
    """``sweep(db, booking_url)``: one pass of the sweeper, asking with scheduling's service token."""

    def run(db, url: str, *, minutes_later: int = 60) -> dict[int, HoldOutcome]:
        client = BookingClient(url, timeout=2, credentials=minter.service_credentials("scheduling"))
        try:
            later = utcnow() + timedelta(minutes=minutes_later)
            return sweep_expired_holds(db, client.reservation, now=later)
        finally:
            client.close()

    return run


def test_an_expired_hold_without_an_appointment_is_freed(client, sweeper_db, booking, held, callers, sweep):
    timeslot, _ = held()
    assert sweep(sweeper_db, booking.url)[timeslot["id"]] is HoldOutcome.FREE
    assert is_available(client, callers, timeslot)


def test_an_expired_hold_whose_appointment_exists_becomes_booked(
    client, sweeper_db, booking, held, callers, sweep
):
    timeslot, reservation = held()
    booking.statuses[reservation] = "pending"
    assert sweep(sweeper_db, booking.url)[timeslot["id"]] is HoldOutcome.BOOK
    assert not is_available(client, callers, timeslot)
    # Booked now: the sweeper has nothing more to ask about it.
    assert timeslot["id"] not in sweep(sweeper_db, booking.url)


def test_an_expired_hold_whose_appointment_was_cancelled_is_freed(
    client, sweeper_db, booking, held, callers, sweep
):
    timeslot, reservation = held()
    booking.statuses[reservation] = "cancelled"
    sweep(sweeper_db, booking.url)
    assert is_available(client, callers, timeslot)


def test_an_expired_hold_is_never_freed_while_booking_is_unreachable(
    client, sweeper_db, held, callers, sweep
):
    timeslot, _ = held()
    closed_port = free_port()
    sweep(sweeper_db, f"http://127.0.0.1:{closed_port}")
    assert not is_available(client, callers, timeslot)


def test_a_404_that_is_not_bookings_answer_never_frees_a_hold(
    client, sweeper_db, booking, held, callers, sweep
):
    timeslot, _ = held()
    # A wrong BOOKING_URL path: the server answers 404 for a route that does not exist.
    sweep(sweeper_db, booking.url + "/wrong-prefix")
    assert not is_available(client, callers, timeslot)
    sweep(sweeper_db, booking.url)
    assert is_available(client, callers, timeslot)


def test_a_hold_before_its_expiry_is_left_alone(client, sweeper_db, booking, held, callers, sweep):
    timeslot, reservation = held()
    assert timeslot["id"] not in sweep(sweeper_db, booking.url, minutes_later=0)
    assert booking.asked[reservation] == 0
    assert not is_available(client, callers, timeslot)


def test_two_sweepers_at_once_ask_about_each_hold_once(client, sweeper_db, booking, held, sweep):
    holds = [held() for _ in range(12)]
    barrier = threading.Barrier(2)

    def run() -> dict[int, HoldOutcome]:
        barrier.wait()
        return sweep(sweeper_db, booking.url)

    results: list[dict[int, HoldOutcome]] = []
    threads = [threading.Thread(target=lambda: results.append(run())) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert [booking.asked[reservation] for _, reservation in holds] == [1] * len(holds)
    settled = Counter(timeslot_id for result in results for timeslot_id in result)
    assert [settled[timeslot["id"]] for timeslot, _ in holds] == [1] * len(holds)


def test_the_running_service_frees_abandoned_holds_in_the_background(
    make_client, sweeper_database_url, booking, new_id, callers, when, rfc3339, wait_until, from_booking
):
    settings = {
        "database_url": sweeper_database_url,
        "hold_sweeper_enabled": True,
        "hold_seconds": 1,
        "hold_sweep_interval_seconds": 0.1,
        "booking_url": booking.url,
    }
    with make_client(**settings) as service:
        doctor_id, patient_id = new_id(), new_id()
        start = when(91, 10)
        body = {"start_time": rfc3339(start), "end_time": rfc3339(start + timedelta(minutes=30))}
        timeslot = service.post(
            "/api/timeslots/", json=body, headers=callers("doctor", doctor_id).headers
        ).json()
        hold = {"reservation_id": str(uuid.uuid4()), "patient_id": patient_id}
        assert (
            service.post(
                f"/internal/timeslots/{timeslot['id']}/hold", json=hold, headers=from_booking
            ).status_code
            == 200
        )
        assert not is_available(service, callers, timeslot)
        wait_until(lambda: is_available(service, callers, timeslot), what="the abandoned hold to be freed")


def test_an_expired_hold_the_sweeper_frees_is_announced_as_released(sweeper_db, booking, held, sweep):
    timeslot, reservation = held()
    sweep(sweeper_db, booking.url)
    with sweeper_db.transaction() as session:
        payloads = session.scalars(
            select(OutboxEvent.payload).where(OutboxEvent.event_type == "scheduling.timeslot.released")
        ).all()
    data = [p["data"] for p in payloads if p["data"]["timeslot_id"] == timeslot["id"]]
    assert [(d["reservation_id"], d["reason"]) for d in data] == [(reservation, "hold_expired")]
