"""How much the ForwardAuth hop through the gateway's internal entry point costs.

    .venv/bin/python scripts/measure_auth_hop.py

Two real gateways (this checkout's routing, and a copy whose ForwardAuth calls identity
directly, as before the internal entry point) in front of the same stand-in servers
(tests/e2e/echo.py); blocks of 500 sequential requests to a protected path alternate between
them, then 8 client threads for 5 s on each, twice. Prints latency percentiles and requests/s.
A quick comparison for docs/deploy.md, not a test: it asserts nothing about the numbers.
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.echo import EchoServer  # noqa: E402
from tests.e2e.stack import ROOT, SERVICES, Gateway  # noqa: E402

TOKEN = "hop-token"
PATH = "/api/appointments/"
INTERNAL = 'address: "{{ $internal }}/internal/verify"'
DIRECT = 'address: "{{ $identityUrl }}/internal/verify"'


def sequential(gateway: Gateway, n: int) -> list[float]:
    seconds = []
    with gateway.client(TOKEN) as client:
        for _ in range(n):
            started = time.perf_counter()
            response = client.get(PATH)
            seconds.append(time.perf_counter() - started)
            assert response.status_code == 200, response.text
    return seconds


def throughput(gateway: Gateway, seconds: float = 5.0, threads: int = 8) -> float:
    done = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def work() -> None:
        with gateway.client(TOKEN) as client:
            while time.monotonic() < deadline:
                assert client.get(PATH).status_code == 200
                with lock:
                    done[0] += 1

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return done[0] / seconds


def percentile(values: list[float], fraction: float) -> float:
    return sorted(values)[int(fraction * len(values))] * 1000


def main() -> None:
    servers = {s: EchoServer(s, users={TOKEN: ("42", "patient")}).start() for s in SERVICES}
    docs = EchoServer("docs").start()
    # One write per answer (the stand-ins write headers and body apart: Nagle + delayed ACK).
    for server in (*servers.values(), docs):
        server._server.RequestHandlerClass.wbufsize = -1
    backends = {s: [servers[s].url] for s in SERVICES}
    work = Path(tempfile.mkdtemp(prefix="auth-hop-"))
    direct = work / "gateway-direct"
    shutil.copytree(ROOT / "gateway", direct, ignore=shutil.ignore_patterns("docs"))
    routes = direct / "dynamic" / "routes.yml"
    assert INTERNAL in routes.read_text()
    routes.write_text(routes.read_text().replace(INTERNAL, DIRECT))
    procfile = work / "Procfile.direct"
    procfile.write_text(
        f"gateway: sh {direct}/run.sh\n" + "".join(f"{name}: true\n" for name in (*SERVICES, "docs"))
    )
    env = {"DOCS_URLS": docs.url, "GATEWAY_LOG_LEVEL": "ERROR"}
    gateways = {
        "internal hop": Gateway(workdir=work / "internal", backends=backends, env=env).up(),
        "direct": Gateway(workdir=work / "direct", backends=backends, env=env, procfile=procfile).up(),
    }
    try:
        latencies: dict[str, list[float]] = {name: [] for name in gateways}
        rates: dict[str, list[float]] = {name: [] for name in gateways}
        for gateway in gateways.values():
            sequential(gateway, 200)  # warm-up
        for _ in range(6):
            for name, gateway in gateways.items():
                latencies[name] += sequential(gateway, 500)
        for _ in range(2):
            for name, gateway in gateways.items():
                rates[name].append(throughput(gateway))
        for name in gateways:
            lat = latencies[name]
            sys.stdout.write(
                f"{name:<13} p50 {percentile(lat, 0.5):.2f} ms  p90 {percentile(lat, 0.9):.2f} ms  "
                f"p99 {percentile(lat, 0.99):.2f} ms  {statistics.mean(rates[name]):.0f} req/s (8 threads)\n"
            )
    finally:
        for gateway in gateways.values():
            gateway.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
