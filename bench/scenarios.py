"""The two scenarios wrk cannot express: a booking race, and cancel-to-free propagation."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from bench.load import Result


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (nearest rank) of ``values``."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


# -- 7. many patients racing for one timeslot ---------------------------------------------


class RawConnection:
    """One keep-alive HTTP/1.1 connection with a pre-encoded request, for a simultaneous start."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, host: str, port: int) -> RawConnection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def exchange(self, request: bytes) -> tuple[int, float]:
        """Send ``request``; the response's status and the seconds it took."""
        started = time.perf_counter()
        self.writer.write(request)
        await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int((await self.reader.readline()).split(b";")[0], 16)
                await self.reader.readexactly(size + 2)
                if size == 0:
                    break
        else:
            await self.reader.readexactly(int(headers.get("content-length", "0")))
        return status, time.perf_counter() - started

    def close(self) -> None:
        self.writer.close()


def booking_request(host: str, timeslot_id: int, token: str) -> bytes:
    body = json.dumps({"timeslot_id": timeslot_id}).encode()
    head = (
        f"POST /api/appointments/ HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


@dataclass
class RaceRound:
    timeslot_id: int
    tokens: list[str]


async def _race(base_url: str, rounds: list[RaceRound], active_appointments: Callable[[int], int]) -> Result:
    parts = urlsplit(base_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    racers = max(len(r.tokens) for r in rounds)
    connections = [await RawConnection.open(host, port) for _ in range(racers)]
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    bad_rounds = []
    try:
        for number, race in enumerate(rounds, 1):
            requests = [booking_request(parts.netloc, race.timeslot_id, t) for t in race.tokens]
            # Every request is encoded and every connection open: the writes go out together.
            outcomes = await asyncio.gather(
                *(conn.exchange(req) for conn, req in zip(connections, requests, strict=False)),
                return_exceptions=True,
            )
            winners = 0
            for outcome in outcomes:
                if isinstance(outcome, BaseException):
                    statuses["error"] = statuses.get("error", 0) + 1
                    continue
                status, seconds = outcome
                statuses[str(status)] = statuses.get(str(status), 0) + 1
                latencies.append(seconds)
                winners += status == 201
            stored = active_appointments(race.timeslot_id)
            if winners != 1 or stored != 1:
                bad_rounds.append(f"round {number}: {winners} got 201, {stored} active appointments stored")
            if any(isinstance(o, BaseException) for o in outcomes):
                for conn in connections:
                    conn.close()
                connections = [await RawConnection.open(host, port) for _ in range(racers)]
    finally:
        for conn in connections:
            conn.close()
    unexpected = sum(n for status, n in statuses.items() if status not in {"201", "409"})
    note = (
        f"{len(rounds) - len(bad_rounds)}/{len(rounds)} rounds with exactly one winner "
        f"({racers} patients each; the rest 409)"
    )
    if bad_rounds:
        note += "; " + "; ".join(bad_rounds[:3])
    return Result(
        name="race",
        requests=len(latencies),
        p50_ms=_ms(percentile(latencies, 50)),
        p99_ms=_ms(percentile(latencies, 99)),
        errors=unexpected + len(bad_rounds),
        statuses=dict(sorted(statuses.items())),
        note=note,
    )


def race(base_url: str, rounds: list[RaceRound], active_appointments: Callable[[int], int]) -> Result:
    """``rounds`` of many patients booking one timeslot at once; exactly one must win each."""
    return asyncio.run(_race(base_url, rounds, active_appointments))


# -- 8. cancel -> the timeslot is back in the free listing ----------------------------------


@dataclass
class Cancellation:
    appointment_id: int
    patient_token: str
    doctor_id: int
    timeslot_id: int
    day: str


async def _propagation(
    base_url: str, items: list[Cancellation], *, concurrency: int, poll: float, timeout: float
) -> Result:
    delays: list[float] = []
    statuses: dict[str, int] = {}
    failures: list[str] = []
    queue: asyncio.Queue[Cancellation] = asyncio.Queue()
    for item in items:
        queue.put_nowait(item)
    limits = httpx.Limits(max_connections=concurrency * 2, max_keepalive_connections=concurrency * 2)

    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=10.0) as client:

        async def worker() -> None:
            while not queue.empty():
                item = queue.get_nowait()
                headers = {"Authorization": f"Bearer {item.patient_token}"}
                cancel = await client.delete(f"/api/appointments/{item.appointment_id}/", headers=headers)
                statuses[str(cancel.status_code)] = statuses.get(str(cancel.status_code), 0) + 1
                if cancel.status_code != 204:
                    failures.append(f"cancel {item.appointment_id}: {cancel.status_code}")
                    continue
                cancelled_at = time.perf_counter()
                listing = f"/api/doctors/{item.doctor_id}/timeslots/"
                params = {"date": item.day, "page_size": 100}
                while True:
                    response = await client.get(listing, params=params, headers=headers)
                    if response.status_code == 200 and any(
                        slot["id"] == item.timeslot_id for slot in response.json()["results"]
                    ):
                        delays.append(time.perf_counter() - cancelled_at)
                        break
                    if response.status_code != 200:
                        failures.append(f"listing for {item.timeslot_id}: {response.status_code}")
                        break
                    if time.perf_counter() - cancelled_at > timeout:
                        failures.append(f"timeslot {item.timeslot_id} not free after {timeout:.0f}s")
                        break
                    await asyncio.sleep(poll)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    note = f"{len(delays)}/{len(items)} timeslots back in the free listing; {concurrency} at a time"
    if delays:
        note += f", mean {statistics.mean(delays) * 1000:.0f} ms, max {max(delays) * 1000:.0f} ms"
    if failures:
        note += "; " + "; ".join(failures[:3])
    return Result(
        name="propagation",
        requests=len(delays),
        p50_ms=_ms(percentile(delays, 50)),
        p99_ms=_ms(percentile(delays, 99)),
        errors=len(failures),
        statuses=dict(sorted(statuses.items())),
        note=note,
    )


def propagation(
    base_url: str, items: list[Cancellation], *, concurrency: int, poll: float = 0.005, timeout: float = 10.0
) -> Result:
    """Cancel each appointment (204), then poll the free listing until its timeslot shows."""
    return asyncio.run(_propagation(base_url, items, concurrency=concurrency, poll=poll, timeout=timeout))


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000
