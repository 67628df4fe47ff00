"""SIGTERM drains: readiness turns false first, requests are still served, then uvicorn stops.

A real uvicorn process serving a small app with the chassis' health router and drain.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import time

import httpx
import pytest

from chassis.testkit import free_port

APP = textwrap.dedent(
    """
    import asyncio
    from contextlib import asynccontextmanager

    from fastapi import FastAPI

    from chassis.health import health_router
    from chassis.shutdown import drain_on_sigterm


    def create_app():
        @asynccontextmanager
        async def lifespan(app):
            with drain_on_sigterm(app):
                yield

        app = FastAPI(lifespan=lifespan)
        app.include_router(health_router({}))

        @app.get("/slow")
        async def slow(seconds: float = 1.0):
            await asyncio.sleep(seconds)
            return {"slept": seconds}

        return app
    """
)


@pytest.fixture
def server(tmp_path):
    (tmp_path / "drain_app.py").write_text(APP)
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "drain_app:create_app",
            "--app-dir",
            str(tmp_path),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--timeout-graceful-shutdown",
            "20",
        ],
        env={"SHUTDOWN_DRAIN_SECONDS": "60", "PATH": "/usr/bin:/bin"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/health/ready").status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert process.poll() is None, process.stderr.read().decode()
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.1)
    yield process, url
    if process.poll() is None:
        process.kill()
    process.wait(10)


def test_sigterm_turns_readiness_false_while_requests_are_still_served(server):
    process, url = server
    process.send_signal(signal.SIGTERM)
    ready = httpx.get(f"{url}/health/ready")
    assert ready.status_code == 503
    assert ready.json()["status"] == "draining"
    # Still serving, new connections included, during the drain (60 s here).
    assert httpx.get(f"{url}/slow?seconds=0").status_code == 200
    assert httpx.get(f"{url}/health/live").status_code == 200
    assert process.poll() is None


def test_a_second_sigterm_finishes_the_requests_in_flight_then_exits(server):
    process, url = server
    process.send_signal(signal.SIGTERM)
    assert httpx.get(f"{url}/health/ready").status_code == 503
    answers: list[int] = []
    in_flight = threading.Thread(
        target=lambda: answers.append(httpx.get(f"{url}/slow?seconds=2").status_code)
    )
    in_flight.start()
    time.sleep(0.5)  # the request is in the server's hands
    process.send_signal(signal.SIGTERM)
    in_flight.join(30)
    assert answers == [200]
    process.wait(30)
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/health/live")
