"""``python -m bench.http_client``: the CPU one internal JSON call costs the caller, by client.

Booking calls scheduling's hold on every booking; this measures what that call costs booking's
process with ``chassis.http.JsonClient`` (keep-alive HTTP/1.1 on ``http.client``) and with
httpx (the project's default client), against a minimal ASGI server in another process that
answers like the hold. ``chassis/http.py`` exists because of the difference (bench/README.md,
"The internal call's client").
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable

import httpx

from chassis.http import JsonClient
from chassis.testkit import free_port

HOLD = json.dumps(
    {
        "timeslot_id": 1,
        "doctor_id": 2,
        "start_time": "2026-12-03T09:00:00Z",
        "end_time": "2026-12-03T09:30:00Z",
        "held_until": "2026-12-03T09:00:30Z",
    }
).encode()
BODY = {"reservation_id": "3fa85f64-5717-4562-b3fc-2c963f66afa6", "patient_id": 7}
HEADERS = {"Authorization": "Bearer x"}
PATH = "/internal/timeslots/1/hold"


async def hold_app(scope, receive, send):  # type: ignore[no-untyped-def]
    """Answers every request as scheduling answers a hold (the server's cost is not measured)."""
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
    )
    await send({"type": "http.response.body", "body": HOLD})


def say(line: str) -> None:
    sys.stdout.write(line + "\n")


def per_call(call: Callable[[], object], calls: int) -> tuple[float, float]:
    """(µs of this process's CPU, µs of wall time) per call, after a warm-up."""
    for _ in range(200):
        call()
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(calls):
        call()
    return (time.process_time() - cpu) / calls * 1e6, (time.perf_counter() - wall) / calls * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    args = parser.parse_args(argv)
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.http_client:hold_app",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ]
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 15
        while True:
            try:
                httpx.get(url)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        json_client = JsonClient(url, timeout=3)
        httpx_client = httpx.Client(base_url=url, timeout=3)
        clients = {
            "chassis.http.JsonClient": lambda: json_client.post(PATH, BODY, headers=HEADERS),
            "httpx.Client": lambda: httpx_client.post(PATH, json=BODY, headers=HEADERS),
        }
        say("| client | CPU µs per call | wall µs per call |")
        say("| --- | --- | --- |")
        for name, call in clients.items():
            cpu, wall = per_call(call, args.calls)
            say(f"| {name} | {cpu:,.0f} | {wall:,.0f} |")
    finally:
        server.terminate()
        server.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
