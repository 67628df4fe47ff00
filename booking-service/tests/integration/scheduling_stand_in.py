"""A stand-in for scheduling-service's internal hold/release API, served over real HTTP.

It follows docs/booking-protocol.md (one conditional hold per timeslot, release
only by the holding reservation) so booking-service's own tests can book without
the whole stack; the real scheduling-service is exercised in tests/e2e. Every request it
receives and every answer it gives (but the scripted failures) is checked against
``contracts/http/scheduling.timeslot.*.json``, the contract scheduling's own tests check too.
A test can also make one timeslot answer a given status, or answer slowly, or have its hold
swept at once (``sweep_on_hold``: the hold sweeper asks booking about the new hold before
booking has stored anything, and frees it on a 404, as a hold that expired would be), or
have something happen between granting a hold and answering it (``while_holding``: run in a
thread, while the stand-in goes on answering, e.g. another request's hold).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from chassis.testkit.http_contracts import http_contract

HOLD = http_contract("scheduling.timeslot.hold")
RELEASE = http_contract("scheduling.timeslot.release")


@dataclass
class StandInTimeslot:
    doctor_id: int
    start_time: datetime
    end_time: datetime
    reservation_id: str | None = None


@dataclass
class SchedulingStandIn:
    timeslots: dict[int, StandInTimeslot] = field(default_factory=dict)
    failures: dict[int, int] = field(default_factory=dict)
    delays: dict[int, float] = field(default_factory=dict)
    # timeslot id -> the sweeper's lookup of a reservation at booking (returns its status code).
    sweep_on_hold: dict[int, Callable[[str], int]] = field(default_factory=dict)
    # timeslot id -> what happens once its hold is granted, before it is answered (one time).
    while_holding: dict[int, Callable[[str], object]] = field(default_factory=dict)
    holds: list[dict] = field(default_factory=list)
    releases: list[dict] = field(default_factory=list)
    url: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add_timeslot(
        self, timeslot_id: int, doctor_id: int, *, starts_in: timedelta = timedelta(days=1)
    ) -> None:
        start = datetime.now(UTC).replace(microsecond=0) + starts_in
        self.timeslots[timeslot_id] = StandInTimeslot(doctor_id, start, start + timedelta(minutes=30))

    def reset(self) -> None:
        with self._lock:
            self.timeslots.clear()
            self.failures.clear()
            self.delays.clear()
            self.sweep_on_hold.clear()
            self.while_holding.clear()
            self.holds.clear()
            self.releases.clear()

    def holder_of(self, timeslot_id: int) -> str | None:
        return self.timeslots[timeslot_id].reservation_id

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/internal/timeslots/{timeslot_id}/hold")
        async def hold(timeslot_id: int, request: Request) -> Response:
            body = await request.json()
            HOLD.check_request(body)  # booking's client sends what scheduling's contract says
            self.holds.append({**body, "authorization": request.headers.get("authorization")})
            if timeslot_id in self.delays:
                time.sleep(self.delays[timeslot_id])  # blocks this stand-in only, on purpose
            if timeslot_id in self.failures:
                return _problem(self.failures[timeslot_id], "scripted failure")
            with self._lock:
                slot = self.timeslots.get(timeslot_id)
                if slot is None:
                    return _problem(404, "no such timeslot", "timeslot_not_found")
                if body.get("doctor_id") not in (None, slot.doctor_id):
                    return _problem(422, "another doctor's timeslot", "other_doctor")
                if slot.doctor_id == body["patient_id"]:
                    return _problem(409, "own timeslot", "cannot_book_own_timeslot")
                if slot.reservation_id not in (None, body["reservation_id"]):
                    return _problem(409, "taken", "timeslot_not_available")
                if slot.start_time <= datetime.now(UTC):
                    return _problem(422, "started", "timeslot_started")
                slot.reservation_id = body["reservation_id"]
            held = {
                "timeslot_id": timeslot_id,
                "doctor_id": slot.doctor_id,
                "start_time": slot.start_time.isoformat(),
                "end_time": slot.end_time.isoformat(),
                "held_until": (datetime.now(UTC) + timedelta(seconds=30)).isoformat(),
            }
            HOLD.check_response(200, held)  # the stand-in answers only what scheduling may answer
            sweep = self.sweep_on_hold.get(timeslot_id)
            if sweep is not None and sweep(body["reservation_id"]) == 404:
                with self._lock:
                    if slot.reservation_id == body["reservation_id"]:
                        slot.reservation_id = None
            meanwhile = self.while_holding.pop(timeslot_id, None)
            if meanwhile is not None:
                await asyncio.to_thread(meanwhile, body["reservation_id"])
            return JSONResponse(held)

        @app.post("/internal/timeslots/{timeslot_id}/release")
        async def release(timeslot_id: int, request: Request) -> Response:
            body = await request.json()
            RELEASE.check_request(body)
            self.releases.append({"timeslot_id": timeslot_id, **body})
            with self._lock:
                slot = self.timeslots.get(timeslot_id)
                if slot is not None and slot.reservation_id == body["reservation_id"]:
                    slot.reservation_id = None
            return Response(status_code=204)

        return app


def _problem(status: int, detail: str, code: str | None = None) -> JSONResponse:
    body = {"type": "about:blank", "title": "stand-in", "status": status, "detail": detail}
    if code:
        body["code"] = code
        HOLD.check_response(status, body)  # a scripted failure (no code) is outside the contract on purpose
    return JSONResponse(body, status_code=status, media_type="application/problem+json")
