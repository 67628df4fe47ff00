"""Phase 10: from a booking's 201 to its webhook at a receiver (notification-service).

An admin subscribes a local receiver (``chassis.testkit.outside.HttpReceiver``) to
``appointment.booked``; patients book, a few at a time; for each 201 the delay is the time
until the receiver holds the delivery of that appointment: booking's outbox relay, RabbitMQ,
notification-service's consumer, its webhook worker's poll and the POST. Needs
``WEBHOOK_ALLOW_PRIVATE_TARGETS=true`` in the stack (the harness and ``make run`` set it).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time

import httpx

from bench.load import Result
from bench.scenarios import percentile
from chassis.testkit.outside import HttpReceiver

PATH = "/bench-webhook"


async def _bookings(
    base_url: str, bookings: list[tuple[str, int]], concurrency: int
) -> tuple[dict[int, float], dict[str, int]]:
    answered: dict[int, float] = {}
    statuses: dict[str, int] = {}
    queue: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
    for booking in bookings:
        queue.put_nowait(booking)
    async with httpx.AsyncClient(base_url=base_url, timeout=10.0) as client:

        async def worker() -> None:
            while not queue.empty():
                token, timeslot_id = queue.get_nowait()
                response = await client.post(
                    "/api/appointments/",
                    json={"timeslot_id": timeslot_id},
                    headers={"Authorization": f"Bearer {token}"},
                )
                statuses[str(response.status_code)] = statuses.get(str(response.status_code), 0) + 1
                if response.status_code == 201:
                    answered[response.json()["id"]] = time.time()
                await asyncio.sleep(0.05)  # a booking now and then, not a flood

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return answered, statuses


def webhook_delay(
    base_url: str,
    admin_token: str,
    bookings: list[tuple[str, int]],
    *,
    concurrency: int = 2,
    timeout: float = 60,
) -> Result:
    """Book each (patient token, timeslot id); the delays until each booking's webhook arrived."""
    headers = {"Authorization": f"Bearer {admin_token}"}
    with HttpReceiver() as receiver, httpx.Client(base_url=base_url, timeout=10.0) as client:
        created = client.post(
            "/api/webhooks/",
            json={"url": receiver.url(PATH), "event_types": ["appointment.booked"], "description": "bench"},
            headers=headers,
        )
        if created.status_code != 201:
            return Result(
                name="webhook delay", requests=0, errors=1, note=f"subscribing: {created.status_code}"
            )
        try:
            answered, statuses = asyncio.run(_bookings(base_url, bookings, concurrency))
            arrived: dict[int, float] = {}
            deadline = time.monotonic() + timeout
            while len(arrived) < len(answered) and time.monotonic() < deadline:
                for request in receiver.requests(PATH):
                    appointment_id = json.loads(request.body)["data"]["appointment"]["id"]
                    arrived.setdefault(appointment_id, request.received_at)
                time.sleep(0.05)
        finally:
            client.delete(f"/api/webhooks/{created.json()['id']}/", headers=headers)
    delays = [arrived[a] - at for a, at in answered.items() if a in arrived]
    missing = len(answered) - len(delays)
    note = f"{len(delays)}/{len(answered)} bookings' webhooks received, {concurrency} booking at a time"
    if delays:
        note += f", mean {statistics.mean(delays) * 1000:.0f} ms, max {max(delays) * 1000:.0f} ms"
    if missing:
        note += f"; {missing} not within {timeout:.0f} s"
    return Result(
        name="webhook delay",
        requests=len(delays),
        p50_ms=None if not delays else percentile(delays, 50) * 1000,
        p99_ms=None if not delays else percentile(delays, 99) * 1000,
        errors=missing + sum(n for status, n in statuses.items() if status != "201"),
        statuses=dict(sorted(statuses.items())),
        note=note,
    )
