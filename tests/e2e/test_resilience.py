"""Two replicas of every service: races still have one winner, and when identity or a backend
goes away, the gateway answers honestly and the rest keeps working.

A stack of its own with two replicas of every service (the docs app: one). Fifty patients
booking one timeslot, and bookings racing reschedules for one, still end with exactly one
appointment on it, whichever replicas serve them (the races of test_booking_race.py). Stopping identity
altogether turns every protected request into a 503 problem+json ``auth_unavailable`` with
Retry-After (never forwarded, never a bare 500), login into a 503 ``service_unavailable``, and
leaves public routes served. Restarting every service's processes one after the other with SIGTERM
(a rolling restart, all services at once) under client load costs no request: each process
first turns not-ready, the gateway takes it out of rotation, and only then does it stop
listening.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from itertools import count

import httpx
import pytest

from .api import PASSWORD, User, new_user, problem
from .stack import SERVICES, Stack, StackFactory, wait_until
from .test_appointments import new_timeslot
from .test_booking_race import (
    PATIENTS,
    assert_exactly_one_winner,
    assert_one_winner_and_nothing_lost,
    book_all_at_once,
    race,
    register_patients,
)

_slots = count(1)


@pytest.fixture(scope="module")
def replicated(stacks: StackFactory) -> Iterator[Stack]:
    stack = stacks.start("resilience", replicas=dict.fromkeys(SERVICES, 2))
    yield stack
    stack.close()


def test_with_two_replicas_of_every_service_fifty_patients_booking_one_timeslot_make_one_appointment(
    replicated,
):
    doctor = new_user(replicated, "doctor", full_name="Rita Replica")
    patients = register_patients(replicated, PATIENTS)
    slot = new_timeslot(replicated, doctor)

    results = book_all_at_once(replicated, patients, slot["id"])

    assert_exactly_one_winner(replicated, doctor, slot["id"], results)
    served_by = {replicated.access_log(request_id)["ServiceURL"] for _, request_id in results}
    assert served_by == set(replicated.service_urls["booking"])


def test_with_two_replicas_of_every_service_of_bookings_and_reschedules_racing_exactly_one_wins(
    replicated,
):
    doctor = new_user(replicated, "doctor", full_name="Remy Replica")
    target, results = race(replicated, doctor)
    assert_one_winner_and_nothing_lost(replicated, doctor, target, results)


def each(names: list[str], action: Callable[[str], None]) -> None:
    with ThreadPoolExecutor(len(names)) as pool:
        list(pool.map(action, names))


def assert_no_internals(response: httpx.Response) -> None:
    assert "127.0.0.1" not in response.text
    assert "traceback" not in response.text.lower()


def test_with_identity_stopped_protected_routes_get_503_auth_unavailable_and_public_ones_still_work(
    replicated,
):
    stack = replicated
    patient = new_user(stack, "patient", full_name="Ida Outage")
    identity = stack.replicas("identity")
    each(identity, stack.stop)
    try:
        with stack.client(patient.access) as client:
            for method, path in [
                ("GET", "/api/appointments/me/"),
                ("GET", "/api/doctors/"),
                ("POST", "/api/timeslots/"),
                ("GET", "/api/auth/me/"),
            ]:
                response = client.request(method, path, json={} if method == "POST" else None)
                body = problem(response, 503)
                assert body["code"] == "auth_unavailable"
                assert int(response.headers["retry-after"]) >= 1
                assert_no_internals(response)
        with stack.client() as client:
            # Login: identity's own route, no replica healthy: 503 once the gateway has seen
            # both go (a 502 problem+json before that), never a bare error.
            def login() -> httpx.Response | None:
                response = client.post(
                    "/api/auth/login/", json={"email": patient.email, "password": PASSWORD}
                )
                assert response.status_code in (502, 503), response.text
                problem(response, response.status_code)
                return response if response.status_code == 503 else None

            response = wait_until(login, timeout=20, what="login answered 503")
            assert problem(response, 503)["code"] == "service_unavailable"
            assert int(response.headers["retry-after"]) >= 1
            assert_no_internals(response)
            # Public routes that do not need identity are served as usual.
            assert client.get("/api/schema/doctor/openapi.json").status_code == 200
            assert client.get("/api/schema/swagger-ui/").status_code == 200
            unknown = client.get("/api/no-such-thing/")
            assert problem(unknown, 404)["code"] == "not_found"
    finally:
        each(identity, stack.start)
    with stack.client(patient.access) as client:
        assert client.get("/api/appointments/me/").status_code == 200


class Load:
    """Client threads sending a bounded mix of reads and writes through the gateway until stopped.

    Every answer is recorded: a failure is a 5xx or no answer at all.
    """

    def __init__(self, stack: Stack, patient: User, doctor: User, threads: int = 3) -> None:
        self.stack = stack
        self.patient = patient
        self.doctor = doctor
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.answers = 0
        self.failures: list[str] = []
        self._threads = [threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(threads)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(60)

    def _requests(self) -> list[tuple[str, str, str, dict | None]]:
        start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=30)
        start += timedelta(minutes=40 * next(_slots))
        slot = {"start_time": start.isoformat(), "end_time": (start + timedelta(minutes=30)).isoformat()}
        return [
            (self.patient.access, "GET", "/api/auth/me/", None),
            (self.patient.access, "PATCH", "/api/auth/me/", {"full_name": f"Rolling {uuid.uuid4().hex[:6]}"}),
            (self.patient.access, "GET", "/api/doctors/", None),
            (self.patient.access, "GET", f"/api/doctors/{self.doctor.id}/timeslots/", None),
            (self.doctor.access, "POST", "/api/timeslots/", slot),
            (self.patient.access, "GET", "/api/appointments/me/", None),
        ]

    def _run(self, n: int) -> None:
        with self.stack.client(timeout=30) as client:
            while not self.stop.is_set():
                for token, method, path, body in self._requests():
                    try:
                        response = client.request(
                            method, path, json=body, headers={"Authorization": f"Bearer {token}"}
                        )
                        failure = (
                            f"{response.status_code} {response.text[:200]}"
                            if response.status_code >= 500
                            else None
                        )
                    except httpx.HTTPError as exc:
                        failure = f"no answer: {exc!r}"
                    with self.lock:
                        self.answers += 1
                        if failure:
                            self.failures.append(f"{method} {path}: {failure}")
                    self.stop.wait(0.05)


def test_a_rolling_restart_with_sigterm_under_load_costs_no_request(replicated):
    stack = replicated
    patient = new_user(stack, "patient", full_name="Rolf Rolling")
    doctor = new_user(stack, "doctor", full_name="Dr Roll")

    def roll(service: str) -> list[str]:
        # One replica after the other, as an orchestrator rolls a deployment. SIGTERM: not
        # ready, served on while the gateway takes it out, then stopped; started again and back
        # in the gateway's rotation before the next one goes.
        replicas = stack.replicas(service)
        for name in replicas:
            stack.restart(name)
        return replicas

    before = {name: stack.process(name).pid for service in SERVICES for name in stack.replicas(service)}
    with Load(stack, patient, doctor) as load:
        # Every service rolls at the same time, each keeping one replica in rotation.
        with ThreadPoolExecutor(len(SERVICES)) as pool:
            rolled = list(pool.map(roll, SERVICES))
        answered_during = load.answers
    assert sorted(name for names in rolled for name in names) == sorted(before)
    # Every process is a new one, and running.
    assert all(stack.process(name).running and stack.process(name).pid != pid for name, pid in before.items())
    assert answered_during > 0
    assert load.failures == []
