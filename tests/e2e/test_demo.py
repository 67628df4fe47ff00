"""`make demo` (scripts/demo.py) against a running stack: it fills it through the public API,
and running it again reuses what is there."""

from __future__ import annotations

import importlib.util
import itertools
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import ModuleType
from typing import Any

import pytest

from .api import login
from .stack import ROOT, Credentials, Stack

DEMO = ROOT / "scripts" / "demo.py"
# One run makes ~35 accounts, ~500 timeslots and ~30 appointments; the bound is for a broken run.
DEMO_TIMEOUT = 300


def demo_module() -> ModuleType:
    """scripts/demo.py as a module, for its list of doctors."""
    spec = importlib.util.spec_from_file_location("clinic_demo", DEMO)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def run_demo(stack: Stack, admin: Credentials) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [
            sys.executable,
            str(DEMO),
            "--base-url",
            stack.base_url,
            "--admin-email",
            admin.email,
            "--admin-password",
            admin.password,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=DEMO_TIMEOUT,
    )
    assert result.returncode == 0, f"demo exited with {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def demo_output(stack: Stack, admin: Credentials) -> str:
    return run_demo(stack, admin).stdout


@pytest.fixture(scope="module")
def admin_token(stack: Stack, admin: Credentials) -> str:
    with stack.client() as client:
        return login(client, admin.email, admin.password)["access"]


def count(stack: Stack, token: str, path: str, **params: Any) -> int:
    with stack.client(token) as client:
        response = client.get(path, params={**params, "page_size": 1})
    assert response.status_code == 200, response.text
    return response.json()["count"]


def test_the_demo_makes_doctors_of_many_specialties_with_profiles_and_free_timeslots(
    stack, demo_output, admin_token
):
    seeds = demo_module().DOCTORS
    assert len(seeds) >= 12
    with stack.client(admin_token) as client:
        for seed in seeds:
            found = client.get("/api/doctors/", params={"search": seed.full_name}).json()["results"]
            (doctor,) = [d for d in found if d["full_name"] == seed.full_name]
            assert (doctor["specialty"], doctor["bio"]) == (seed.specialty, seed.bio)
            free = client.get(f"/api/doctors/{doctor['id']}/timeslots/").json()
            assert free["count"] > 0, f"{seed.full_name} has no free timeslots"
        cardiologists = client.get("/api/doctors/", params={"specialty": "cardiology"}).json()["count"]
    assert cardiologists >= 2
    assert len({seed.specialty for seed in seeds}) >= 10


def test_the_demo_makes_appointments_in_every_status(stack, demo_output, admin_token):
    for status in ("pending", "confirmed", "cancelled", "completed", "no_show"):
        assert count(stack, admin_token, "/api/appointments/", status=status) > 0, status


def test_the_demo_prints_the_logins_that_work(stack, demo_output):
    lines = [line.split() for line in demo_output.splitlines() if line.startswith("  patient ")]
    assert len(lines) >= 20
    _, email, password, *_ = lines[0]
    with stack.client() as client:
        assert client.post("/api/auth/login/", json={"email": email, "password": password}).status_code == 200


def test_running_the_demo_again_reuses_the_demo_accounts(stack, demo_output, admin, admin_token):
    patients_before = count(stack, admin_token, "/api/users/", role="patient")
    doctors_before = count(stack, admin_token, "/api/users/", role="doctor")
    again = run_demo(stack, admin).stdout
    assert "(0 new)" in again
    assert count(stack, admin_token, "/api/users/", role="patient") == patients_before
    assert count(stack, admin_token, "/api/users/", role="doctor") == doctors_before


def test_the_demo_needs_an_admin_login_and_says_how_to_get_one(stack):
    result = subprocess.run(
        [
            sys.executable,
            str(DEMO),
            "--base-url",
            stack.base_url,
            "--admin-email",
            "",
            "--admin-password",
            "",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "ADMIN_EMAIL" in result.stdout
    assert "identity createadmin" in result.stdout


class RateLimited(BaseHTTPRequestHandler):
    """A gateway that answers 429 with Retry-After: 1 twice, then 200."""

    answers = [429, 429, 200]
    seen: list[float] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        RateLimited.seen.append(time.monotonic())
        status = RateLimited.answers[min(len(RateLimited.seen), len(RateLimited.answers)) - 1]
        body = b"Too Many Requests" if status == 429 else b"{}"
        self.send_response(status)
        if status == 429:
            self.send_header("Retry-After", "1")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_the_demo_waits_as_retry_after_says_when_the_gateway_rate_limits_it():
    server = ThreadingHTTPServer(("127.0.0.1", 0), RateLimited)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    RateLimited.seen = []
    try:
        api = demo_module().Api(f"http://127.0.0.1:{server.server_address[1]}", None)
        response = api.call("POST", "/api/auth/login/", json={})
        api.close()
    finally:
        server.shutdown()
        server.server_close()
    assert response.status_code == 200
    assert len(RateLimited.seen) == 3
    assert RateLimited.seen[1] - RateLimited.seen[0] >= 1 and RateLimited.seen[2] - RateLimited.seen[1] >= 1


def test_the_demo_spreads_its_clients_over_loopback_addresses_only_for_a_loopback_gateway():
    demo = demo_module()
    local = list(itertools.islice(demo.source_addresses("http://127.0.0.1:8000"), 3))
    assert local == ["127.0.0.11", "127.0.0.12", "127.0.0.13"]
    assert list(itertools.islice(demo.source_addresses("http://localhost:8000"), 1)) == ["127.0.0.11"]
    assert list(itertools.islice(demo.source_addresses("http://clinic.example.com"), 2)) == [None, None]
