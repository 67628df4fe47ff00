"""A fault-injection soak of the whole stack, and a checker of what it leaves behind.

    python -m tests.robustness.soak --minutes 10          # make soak
    python -m tests.robustness.soak --seconds 60          # the short soak of make test

A stack with two replicas of identity, booking and scheduling talks to RabbitMQ through a
TCP proxy of its own. Client threads send mixed traffic through the gateway (patients and doctors
register, doctors publish timeslots, patients book, many at once on a few "hot" timeslots,
patients join and leave waitlists and book the timeslots offered to them,
doctors confirm, everyone cancels, users rename themselves, the admin deactivates users)
while a chaos loop cuts the broker connection, kills (SIGKILL) and restarts service
processes (an identity replica among them, often), also in the middle of a burst of bookings,
and stops them gracefully (SIGTERM: they drain first). Every answer a client gets is recorded,
a 5xx with where it came from (its problem+json ``code``).

Then traffic stops, every fault is healed, and once the system has settled (outboxes
published, queues drained, holds settled; bounded by a deadline) ``check`` reads every
service's database and the broker and lists each anomaly:

- a timeslot with two active appointments;
- an active appointment whose timeslot is not ``booked`` for its reservation, or a
  ``booked`` timeslot with no active appointment of that reservation;
- a cancelled appointment whose timeslot is neither free nor taken by another reservation;
- a hold never settled; a timeslot held with no waitlist offer (or appointment) behind it, an
  open offer whose timeslot is not held for it, an accepted offer without its appointment;
- a future active appointment of a deactivated user;
- a doctor profile, a scheduling doctor or a booking user that disagrees with identity;
- an outbox event never published; a message left in a service's queue, a retry queue or
  a dead-letter queue;
- a 201 a client saw (user, timeslot, appointment) that is not in the database;
- notification-service (``notifications.py``): an appointment event without its one delivered
  webhook (received, signature valid), a mailed event without its two mails, a mail that
  reached the mail server twice.

The report (operations, their answers and availability, the 5xx by cause, faults injected,
anomalies) is printed; the run fails when there is any anomaly, or any 5xx that is not a 502
or 503 problem+json (a 500 above all: a bug, or the gateway's bare answer when it could not
check a token).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
from sqlalchemy import create_engine, text

from chassis.settings import normalise_database_url
from chassis.testkit import DatabaseFactory, RabbitVhosts, TcpProxy

from ..e2e.stack import Stack, StackError
from . import soak_waitlist
from .notifications import Outside, check_notifications, pending_notifications

PASSWORD = "Blue-Otter-42"
SERVICES = ("identity", "doctor", "scheduling", "booking", "notification")
SOAK_ENV = {
    "AUTH_RATE_LIMIT_AVERAGE": "100000",
    "AUTH_RATE_LIMIT_BURST": "100000",
    "LOGIN_THROTTLE_ADDRESS_FAILURES": "100000",
    "ACCESS_TOKEN_TTL_SECONDS": "7200",
    "HOLD_SECONDS": "10",
    "HOLD_SWEEP_INTERVAL_SECONDS": "1",
    "DB_POOL_SIZE": "3",
    "DB_MAX_OVERFLOW": "3",
    "LOG_LEVEL": "WARNING",
    **soak_waitlist.WAITLIST_ENV,
}
REPLICAS = {"identity": 2, "booking": 2, "scheduling": 2}
# The gateway's own answers (problem+json codes of gateway/docs: clinic_docs/problems.py).
GATEWAY_CODES = {
    "auth_unavailable": "the token could not be checked (no identity replica answered)",
    "service_unavailable": "no healthy replica of the service (a single replica down)",
    "service_unreachable": "the replica died with the request in flight, or before the gateway saw it go",
    "service_timeout": "the service did not answer in time",
}
NO_ANSWER = "no answer (the connection dropped or timed out)"
# 5xx that say the request changed nothing: the gateway's before it forwarded it, booking's own.
NOTHING_CHANGED = {
    "gateway: auth_unavailable",
    "gateway: service_unavailable",
    "service: scheduling_unavailable",
    "service: hold_expired",
}
RABBITMQCTL = os.environ.get("RABBITMQCTL", "rabbitmqctl")


# -- what the clients saw --------------------------------------------------------------------


@dataclass
class Person:
    id: int
    email: str
    role: str
    access: str
    active: bool = True


@dataclass
class Ledger:
    """Everything the clients did and saw; shared by the client threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    answers: Counter[tuple[str, int]] = field(default_factory=Counter)
    # (operation, status, cause) of every 5xx and every request without an answer.
    failures: Counter[tuple[str, int, str]] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    people: dict[int, Person] = field(default_factory=dict)
    timeslots: dict[int, int] = field(default_factory=dict)  # id -> doctor id (201s)
    appointments: dict[int, dict[str, Any]] = field(default_factory=dict)  # id -> body (201s)
    entries: dict[int, int] = field(default_factory=dict)  # waitlist entry id -> patient id (201s)
    # Appointments some reschedule moved (200) or may have moved (no answer, or a 5xx that does not
    # say nothing changed: a replica that died with the request in flight may have committed it).
    moved: set[int] = field(default_factory=set)
    # A retry with the same Idempotency-Key that did not get the first answer again.
    replay_mismatches: list[str] = field(default_factory=list)
    fault_log: list[str] = field(default_factory=list)

    def answer(self, operation: str, status: int, cause: str | None = None) -> None:
        with self.lock:
            self.answers[(operation, status)] += 1
            if cause is not None:
                self.failures[(operation, status, cause)] += 1

    def fault(self, kind: str, detail: str) -> None:
        with self.lock:
            self.faults[kind] += 1
            self.fault_log.append(f"{time.strftime('%H:%M:%S')} {kind}: {detail}")

    def pick(self, role: str, rng: random.Random, *, active: bool = True) -> Person | None:
        with self.lock:
            found = [p for p in self.people.values() if p.role == role and p.active == active]
        return rng.choice(found) if found else None


class Client:
    """One simulated client: its own loopback address, all answers recorded, errors tolerated."""

    def __init__(self, stack: Stack, ledger: Ledger) -> None:
        self.http = stack.client(timeout=20)
        self.ledger = ledger

    def close(self) -> None:
        self.http.close()

    def call(
        self, operation: str, method: str, path: str, token: str | None = None, **kwargs: Any
    ) -> httpx.Response | None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        headers.update(kwargs.pop("headers", None) or {})
        try:
            response = self.http.request(method, path, headers=headers, **kwargs)
        except httpx.HTTPError:
            self.ledger.answer(operation, 0, NO_ANSWER)
            return None
        self.ledger.answer(operation, response.status_code, failure_cause(response))
        return response


def failure_cause(response: httpx.Response) -> str | None:
    """Where a 5xx came from: ``gateway: <code>``, ``service: <code>``, or what is wrong with it."""
    if response.status_code < 500:
        return None
    if not response.headers.get("content-type", "").startswith("application/problem+json"):
        return f"not problem+json ({response.headers.get('content-type') or 'no content type'})"
    try:
        code = response.json().get("code") or "(no code)"
    except (ValueError, AttributeError):
        return "problem+json that is not a JSON object"
    return f"gateway: {code}" if code in GATEWAY_CODES else f"service: {code}"


def acceptable(status: int, cause: str) -> bool:
    """A 5xx (or no answer) the soak allows: a 502 or 503 problem+json, or a dropped connection."""
    if status == 0:
        return True
    return status in (502, 503) and cause.startswith(("gateway: ", "service: "))


# -- traffic ---------------------------------------------------------------------------------


class Traffic:
    """Client threads sending mixed traffic until ``stop``."""

    def __init__(
        self, stack: Stack, ledger: Ledger, admin_token: str, *, seed: int, threads: int = 6
    ) -> None:
        self.stack = stack
        self.ledger = ledger
        self.admin_token = admin_token
        self.seed = seed
        self.threads = threads
        self.stop = threading.Event()
        self._slot_hours = iter(range(1, 10**7))
        self._slot_lock = threading.Lock()
        self._workers: list[threading.Thread] = []

    def start(self) -> None:
        for n in range(self.threads):
            worker = threading.Thread(target=self._run, args=(n,), name=f"soak-client-{n}", daemon=True)
            worker.start()
            self._workers.append(worker)

    def join(self) -> None:
        self.stop.set()
        for worker in self._workers:
            worker.join(60)

    def _run(self, n: int) -> None:
        rng = random.Random(self.seed * 1000 + n)
        client = Client(self.stack, self.ledger)
        actions: list[tuple[Callable[[Client, random.Random], None], int]] = [
            (self.register_patient, 3),
            (self.register_doctor, 1),
            (self.publish_timeslot, 6),
            (self.book, 10),
            (self.book_hot, 3),
            (self.book_with_retry, 2),
            (self.reschedule, 3),
            (self.reschedule_hot, 2),
            (self.confirm, 4),
            (self.cancel_by_patient, 3),
            (self.cancel_by_doctor, 2),
            (self.rename, 2),
            (self.deactivate, 1),
            (self.browse, 3),
            *(((lambda c, r, act=act: act(self, c, r)), w) for act, w in soak_waitlist.ACTIONS),
        ]
        population = [a for a, _ in actions]
        weights = [w for _, w in actions]
        try:
            while not self.stop.is_set():
                action = rng.choices(population, weights)[0]
                # An unexpected body shape is counted in the answers already.
                with suppress(KeyError, ValueError, TypeError):
                    action(client, rng)
        finally:
            client.close()

    # Actions -------------------------------------------------------------------------------

    def _register(self, client: Client, role: str) -> None:
        email = f"soak-{role}-{uuid.uuid4().hex[:12]}@clinic.example.com"
        body = {
            "email": email,
            "password": PASSWORD,
            "full_name": f"Soak {role.title()} {email[10:16]}",
            "role": role,
        }
        response = client.call(f"register {role}", "POST", "/api/auth/register/", json=body)
        if response is None or response.status_code != 201:
            return
        user_id = response.json()["id"]
        with self.ledger.lock:
            self.ledger.people[user_id] = Person(user_id, email, role, "")
        login = client.call("login", "POST", "/api/auth/login/", json={"email": email, "password": PASSWORD})
        if login is not None and login.status_code == 200:
            with self.ledger.lock:
                self.ledger.people[user_id].access = login.json()["access"]

    def register_patient(self, client: Client, rng: random.Random) -> None:
        self._register(client, "patient")

    def register_doctor(self, client: Client, rng: random.Random) -> None:
        self._register(client, "doctor")

    def _next_start(self) -> datetime:
        with self._slot_lock:
            hour = next(self._slot_hours)
        base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=2)
        return base + timedelta(minutes=40 * hour)

    def publish_timeslot(self, client: Client, rng: random.Random) -> None:
        doctor = self.ledger.pick("doctor", rng)
        if doctor is None or not doctor.access:
            return self.register_doctor(client, rng)
        start = self._next_start()
        body = {"start_time": start.isoformat(), "end_time": (start + timedelta(minutes=30)).isoformat()}
        response = client.call("publish timeslot", "POST", "/api/timeslots/", doctor.access, json=body)
        if response is not None and response.status_code == 201:
            with self.ledger.lock:
                self.ledger.timeslots[response.json()["id"]] = doctor.id

    def _free_of(self, client: Client, rng: random.Random, patient: Person) -> list[int]:
        doctor = self.ledger.pick("doctor", rng)
        return [] if doctor is None else self._free_of_doctor(client, patient, doctor.id)

    def _book(self, client: Client, patient: Person, timeslot_id: int, operation: str) -> None:
        response = client.call(
            operation,
            "POST",
            "/api/appointments/",
            patient.access,
            json={"timeslot_id": timeslot_id, "reason": "soak"},
        )
        if response is not None and response.status_code == 201:
            body = response.json()
            with self.ledger.lock:
                self.ledger.appointments[body["id"]] = body

    def book(self, client: Client, rng: random.Random) -> None:
        patient = self.ledger.pick("patient", rng)
        if patient is None or not patient.access:
            return self.register_patient(client, rng)
        free = self._free_of(client, rng, patient)
        if free:
            self._book(client, patient, rng.choice(free), "book")

    def book_hot(self, client: Client, rng: random.Random) -> None:
        """Several patients at once on the same free timeslot: at most one may win."""
        patient = self.ledger.pick("patient", rng)
        if patient is None or not patient.access:
            return
        free = self._free_of(client, rng, patient)
        if not free:
            return
        target = free[0]
        racers = [p for p in (self.ledger.pick("patient", rng) for _ in range(4)) if p and p.access]
        threads = [
            threading.Thread(target=self._race, args=(racer, target), daemon=True)
            for racer in {r.id: r for r in racers}.values()
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)

    def book_with_retry(self, client: Client, rng: random.Random) -> None:
        """A booking sent twice with one Idempotency-Key (a client retrying): one appointment at
        most, and the retry gets the first answer again."""
        patient = self.ledger.pick("patient", rng)
        if patient is None or not patient.access:
            return
        free = self._free_of(client, rng, patient)
        if not free:
            return
        body = {"timeslot_id": rng.choice(free), "reason": "soak"}
        key = {"Idempotency-Key": uuid.uuid4().hex}
        answers = [
            client.call("book (keyed)", "POST", "/api/appointments/", patient.access, json=body, headers=key)
            for _ in range(2)
        ]
        first, again = answers
        if first is not None and first.status_code == 201:
            with self.ledger.lock:
                self.ledger.appointments[first.json()["id"]] = first.json()
        if first is None or again is None or first.status_code >= 500 or again.status_code >= 500:
            return
        if again.status_code == 409 and again.json().get("code") == "idempotency_key_in_flight":
            return
        if {first.status_code, again.status_code} & {401, 403}:
            return  # refused before the key is read: the soak deactivated the patient meanwhile
        if (again.status_code, again.json()) != (first.status_code, first.json()) or not again.headers.get(
            "Idempotent-Replayed"
        ):
            with self.ledger.lock:
                self.ledger.replay_mismatches.append(
                    f"key {key['Idempotency-Key']}: {first.status_code} then {again.status_code}"
                )

    def _free_of_doctor(self, client: Client, patient: Person, doctor_id: int) -> list[int]:
        response = client.call(
            "list free timeslots",
            "GET",
            f"/api/doctors/{doctor_id}/timeslots/",
            patient.access,
            params={"page_size": 10},
        )
        if response is None or response.status_code != 200:
            return []
        return [slot["id"] for slot in response.json()["results"]]

    def _reschedule(
        self, client: Client, patient: Person, appointment_id: int, timeslot_id: int, op: str
    ) -> None:
        response = client.call(
            op,
            "POST",
            f"/api/appointments/{appointment_id}/reschedule/",
            patient.access,
            json={"timeslot_id": timeslot_id},
        )
        if response is not None and response.status_code == 200:
            with self.ledger.lock:
                self.ledger.appointments[appointment_id] = response.json()
                self.ledger.moved.add(appointment_id)
        elif response is None or failure_cause(response) not in (None, *NOTHING_CHANGED):
            with self.ledger.lock:
                self.ledger.moved.add(appointment_id)

    def reschedule(self, client: Client, rng: random.Random) -> None:
        """A patient moves one of their appointments to another free timeslot of its doctor."""
        found = self._appointment_of(rng, "patient")
        if found:
            patient, appointment = found
            free = self._free_of_doctor(client, patient, appointment["doctor_id"])
            if free:
                self._reschedule(client, patient, appointment["id"], rng.choice(free), "reschedule")

    def reschedule_hot(self, client: Client, rng: random.Random) -> None:
        """A patient moves an appointment into a free timeslot while others book it: one wins."""
        found = self._appointment_of(rng, "patient")
        if not found:
            return
        mover, appointment = found
        free = self._free_of_doctor(client, mover, appointment["doctor_id"])
        if not free:
            return
        target = free[0]
        racers = [p for p in (self.ledger.pick("patient", rng) for _ in range(3)) if p and p.access]
        threads = [
            threading.Thread(target=self._race, args=(racer, target), daemon=True)
            for racer in {r.id: r for r in racers}.values()
        ]
        threads.append(
            threading.Thread(target=self._race_move, args=(mover, appointment["id"], target), daemon=True)
        )
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)

    def _race_move(self, patient: Person, appointment_id: int, timeslot_id: int) -> None:
        client = Client(self.stack, self.ledger)
        try:
            self._reschedule(client, patient, appointment_id, timeslot_id, "reschedule (race)")
        finally:
            client.close()

    def _race(self, patient: Person, timeslot_id: int) -> None:
        client = Client(self.stack, self.ledger)
        try:
            self._book(client, patient, timeslot_id, "book (race)")
        finally:
            client.close()

    def _appointment_of(self, rng: random.Random, role: str) -> tuple[Person, dict[str, Any]] | None:
        with self.ledger.lock:
            candidates = list(self.ledger.appointments.values())
        rng.shuffle(candidates)
        for appointment in candidates[:20]:
            person = self.ledger.people.get(appointment[f"{role}_id"])
            if person is not None and person.active and person.access:
                return person, appointment
        return None

    def confirm(self, client: Client, rng: random.Random) -> None:
        found = self._appointment_of(rng, "doctor")
        if found:
            doctor, appointment = found
            client.call(
                "confirm",
                "PATCH",
                f"/api/appointments/{appointment['id']}/status/",
                doctor.access,
                json={"status": "confirmed"},
            )

    def cancel_by_patient(self, client: Client, rng: random.Random) -> None:
        found = self._appointment_of(rng, "patient")
        if found:
            patient, appointment = found
            client.call(
                "cancel (patient)", "DELETE", f"/api/appointments/{appointment['id']}/", patient.access
            )

    def cancel_by_doctor(self, client: Client, rng: random.Random) -> None:
        found = self._appointment_of(rng, "doctor")
        if found:
            doctor, appointment = found
            client.call(
                "cancel (doctor)",
                "PATCH",
                f"/api/appointments/{appointment['id']}/status/",
                doctor.access,
                json={"status": "cancelled", "cancellation_reason": "soak"},
            )

    def rename(self, client: Client, rng: random.Random) -> None:
        person = self.ledger.pick(rng.choice(["patient", "doctor"]), rng)
        if person and person.access:
            name = f"Renamed {uuid.uuid4().hex[:6]}"
            client.call("rename", "PATCH", "/api/auth/me/", person.access, json={"full_name": name})

    def deactivate(self, client: Client, rng: random.Random) -> None:
        with self.ledger.lock:
            active = sum(p.active for p in self.ledger.people.values())
        if active < 12:
            return
        person = self.ledger.pick(rng.choice(["patient", "patient", "doctor"]), rng)
        if person is None:
            return
        response = client.call("deactivate", "DELETE", f"/api/users/{person.id}/", self.admin_token)
        if response is not None and response.status_code == 204:
            with self.ledger.lock:
                person.active = False

    def browse(self, client: Client, rng: random.Random) -> None:
        person = self.ledger.pick(rng.choice(["patient", "doctor"]), rng)
        if person and person.access:
            client.call("my appointments", "GET", "/api/appointments/me/", person.access)
            if person.role == "patient":
                client.call("list doctors", "GET", "/api/doctors/", person.access, params={"search": "soak"})


# -- chaos -----------------------------------------------------------------------------------


class Chaos:
    """Injects one fault at a time, every few seconds, until ``stop``; heals everything at the end."""

    def __init__(
        self,
        stack: Stack,
        proxy: TcpProxy,
        ledger: Ledger,
        traffic: Traffic,
        *,
        seed: int,
        pause: tuple[float, float] = (3.0, 8.0),
        restart_rabbitmq: bool = False,
    ) -> None:
        self.stack = stack
        self.proxy = proxy
        self.ledger = ledger
        self.traffic = traffic
        self.rng = random.Random(seed)
        self.pause = pause
        self.restart_rabbitmq = restart_rabbitmq
        self.stop = threading.Event()
        self.errors: list[str] = []
        self._thread = threading.Thread(target=self._run, name="soak-chaos", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self) -> None:
        self.stop.set()
        self._thread.join(180)
        self.heal()

    def heal(self) -> None:
        self.proxy.restore()
        for process in self.stack.processes.values():
            if not process.running:
                self._start(process.name)

    def _start(self, name: str, attempts: int = 5) -> None:
        """Start ``name`` again as a supervisor (compose's restart policy, Kubernetes) would: a
        process that fails to start (its database refusing connections, say) is started again."""
        for attempt in range(1, attempts + 1):
            try:
                self.stack.start(name)
                return
            except StackError:
                self.stack.kill(name)  # whatever is left of it
                if attempt == attempts:
                    raise
                self.ledger.fault("failed start, started again", name)
                time.sleep(2.0 * attempt)

    def _run(self) -> None:
        faults = [
            (self.cut_broker, 3),
            (self.kill_service, 3),
            (self.kill_booking_mid_booking, 2),
            (self.kill_identity, 2),
            (self.stop_service, 1),
        ]
        if self.restart_rabbitmq:
            faults.append((self.restart_broker, 1))
        while not self.stop.wait(self.rng.uniform(*self.pause)):
            fault = self.rng.choices([f for f, _ in faults], [w for _, w in faults])[0]
            try:
                fault()
            except Exception as exc:  # a fault that could not be injected or healed is reported
                self.errors.append(f"{fault.__name__}: {exc!r}")
                with suppress(Exception):
                    self.heal()

    def kill_identity(self) -> None:
        """One identity replica crashes: the other checks every token meanwhile."""
        name = self.rng.choice(self.stack.replicas("identity"))
        self.stack.kill(name)
        self.ledger.fault("SIGKILL identity", name)
        self.stop.wait(self.rng.uniform(0.5, 3.0))
        self._start(name)

    def _service_process(self) -> str:
        return self.rng.choice([p.name for p in self.stack.processes.values() if p.service])

    def cut_broker(self) -> None:
        seconds = self.rng.uniform(1.0, 6.0)
        self.proxy.cut()
        self.ledger.fault("broker connection cut", f"{seconds:.1f}s")
        self.stop.wait(seconds)
        self.proxy.restore()

    def kill_service(self) -> None:
        name = self._service_process()
        self.stack.kill(name)
        self.ledger.fault("SIGKILL", name)
        self.stop.wait(self.rng.uniform(0.5, 3.0))
        self._start(name)

    def stop_service(self) -> None:
        name = self._service_process()
        self.stack.stop(name)
        self.ledger.fault("SIGTERM", name)
        self._start(name)

    def kill_booking_mid_booking(self) -> None:
        """A burst of bookings, and one booking replica killed while they are in flight."""
        name = self.rng.choice(self.stack.replicas("booking"))
        burst = [threading.Thread(target=self._one_booking, daemon=True) for _ in range(6)]
        for thread in burst:
            thread.start()
        time.sleep(self.rng.uniform(0.0, 0.15))
        self.stack.kill(name)
        self.ledger.fault("SIGKILL mid-booking", name)
        for thread in burst:
            thread.join(60)
        self._start(name)

    def _one_booking(self) -> None:
        client = Client(self.stack, self.ledger)
        try:
            self.traffic.book(client, random.Random())
        finally:
            client.close()

    def restart_broker(self) -> None:
        """The machine's RabbitMQ restarted (``make soak --restart-rabbitmq`` only: it is shared)."""
        subprocess.run([RABBITMQCTL, "-q", "stop_app"], check=True, capture_output=True, timeout=120)
        self.ledger.fault("RabbitMQ restarted", "stop_app/start_app")
        try:
            self.stop.wait(self.rng.uniform(2.0, 6.0))
        finally:
            subprocess.run([RABBITMQCTL, "-q", "start_app"], check=True, capture_output=True, timeout=120)


# -- the checker -----------------------------------------------------------------------------


def rows(database_url: str, sql: str, **params: Any) -> list[Any]:
    engine = create_engine(normalise_database_url(database_url))
    try:
        with engine.connect() as connection:
            return list(connection.execute(text(sql), params))
    finally:
        engine.dispose()


def queue_depths(amqp_url: str) -> dict[str, int]:
    """Messages (ready and unacknowledged) in each queue of the stack's vhost."""
    vhost = unquote(urlsplit(amqp_url).path.lstrip("/")) or "/"
    result = subprocess.run(
        [RABBITMQCTL, "-q", "list_queues", "-p", vhost, "name", "messages", "--formatter", "json"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return {queue["name"]: int(queue["messages"]) for queue in json.loads(result.stdout or "[]")}


def unpublished(database_urls: dict[str, str]) -> dict[str, int]:
    return {
        service: rows(url, "SELECT count(*) FROM outbox_events WHERE published_at IS NULL")[0][0]
        for service, url in database_urls.items()
    }


def settled(stack: Stack, amqp_url: str) -> str | None:
    """None once nothing is in flight; else what still is."""
    pending = {service: n for service, n in unpublished(stack.database_urls).items() if n}
    if pending:
        return f"unpublished events {pending}"
    busy = {
        name: n
        for name, n in queue_depths(amqp_url).items()
        if n and name != "clinic.unrouted" and not name.endswith(".dlq")
    }
    if busy:
        return f"messages in queues {busy}"
    # A timeslot held for a standing waitlist offer is settled: the offer is behind it.
    held = len(soak_waitlist.held_for_nobody(stack.database_urls))
    if held:
        return f"{held} timeslots still held without an offer"
    openings = soak_waitlist.pending_openings(stack.database_urls)
    if openings:
        return f"{openings} waitlist openings not offered yet"
    return pending_notifications(rows, stack.database_urls["notification"])


def wait_until_settled(stack: Stack, amqp_url: str, timeout: float) -> str | None:
    """Wait (bounded) until nothing is in flight; None when settled, else what was still in flight."""
    deadline = time.monotonic() + timeout
    while True:
        state = settled(stack, amqp_url)
        if state is None or time.monotonic() > deadline:
            return state
        time.sleep(1.0)


def check(stack: Stack, amqp_url: str, ledger: Ledger) -> list[str]:
    """Every anomaly in the services' databases and the broker, as sentences."""
    urls = stack.database_urls
    anomalies: list[str] = []
    appointments = rows(
        urls["booking"],
        "SELECT id, reservation_id, timeslot_id, doctor_id, patient_id, status, start_time FROM appointments",
    )
    timeslots = {
        row.id: row
        for row in rows(
            urls["scheduling"], "SELECT id, doctor_id, state, reservation_id, held_until FROM timeslots"
        )
    }
    active = [a for a in appointments if a.status in ("pending", "confirmed")]
    by_reservation = {a.reservation_id: a for a in appointments}
    offered = soak_waitlist.open_offers(urls)  # reservation -> timeslot of each standing offer

    per_timeslot = Counter(a.timeslot_id for a in active)
    anomalies += [f"timeslot {t} has {n} active appointments" for t, n in per_timeslot.items() if n > 1]

    for a in active:
        slot = timeslots.get(a.timeslot_id)
        if slot is None:
            anomalies.append(f"active appointment {a.id}: its timeslot {a.timeslot_id} does not exist")
        elif slot.state != "booked" or slot.reservation_id != a.reservation_id:
            anomalies.append(
                f"active appointment {a.id}: timeslot {a.timeslot_id} is {slot.state} "
                f"(reservation {slot.reservation_id}, the appointment's is {a.reservation_id})"
            )
    for a in appointments:
        if a.status != "cancelled":
            continue
        slot = timeslots.get(a.timeslot_id)
        if slot is None or slot.state == "available":
            continue  # free (or freed, then removed with its deactivated doctor's free timeslots)
        other = by_reservation.get(slot.reservation_id)
        if offered.get(slot.reservation_id) == slot.id:
            continue  # held again, for the patient it is offered to from the waitlist
        if (
            slot.reservation_id == a.reservation_id
            or other is None
            or other.status not in ("pending", "confirmed")
        ):
            anomalies.append(
                f"cancelled appointment {a.id}: timeslot {a.timeslot_id} is still {slot.state} "
                f"(reservation {slot.reservation_id})"
            )
    for slot in timeslots.values():
        if slot.state == "held" and offered.get(slot.reservation_id) != slot.id:
            anomalies.append(
                f"timeslot {slot.id} is still held with no offer or appointment behind it "
                f"(reservation {slot.reservation_id})"
            )
        elif slot.state == "booked":
            owner = by_reservation.get(slot.reservation_id)
            if owner is None or owner.status not in ("pending", "confirmed", "completed", "no_show"):
                anomalies.append(
                    f"timeslot {slot.id} is booked but no active appointment has its reservation"
                )

    anomalies += soak_waitlist.anomalies(urls, timeslots)

    users = {
        row.id: row
        for row in rows(urls["identity"], "SELECT id, email, full_name, role, is_active, revision FROM users")
    }
    now = datetime.now(UTC)
    for a in active:
        for role in ("patient", "doctor"):
            user = users.get(getattr(a, f"{role}_id"))
            if user is not None and not user.is_active and a.start_time > now:
                anomalies.append(f"appointment {a.id} is active although its {role} {user.id} is deactivated")

    for row in rows(urls["doctor"], "SELECT id, full_name, is_active FROM doctors"):
        user = users.get(row.id)
        listed = user is not None and user.role == "doctor" and user.is_active
        if user is None or row.is_active != listed or (listed and row.full_name != user.full_name):
            anomalies.append(
                f"doctor profile {row.id} ({row.full_name!r}, listed={row.is_active}) disagrees with identity"
            )
    profiles = {row.id for row in rows(urls["doctor"], "SELECT id FROM doctors")}
    anomalies += [
        f"doctor {u.id} has no profile" for u in users.values() if u.role == "doctor" and u.id not in profiles
    ]

    scheduling_doctors = {
        row.id: row
        for row in rows(urls["scheduling"], "SELECT id, is_doctor, is_active, revision FROM doctors")
    }
    booking_users = {
        row.id: row
        for row in rows(urls["booking"], "SELECT id, full_name, role, is_active, revision FROM users")
    }
    for user in users.values():
        if user.email == stack.admin.email:
            # KNOWN GAP (README): the bootstrap admin is registered at identity's start-up, and
            # its event reaches only the consumers whose queues already exist at that moment.
            continue
        seen = scheduling_doctors.get(user.id)
        if seen is None or (seen.is_doctor, seen.is_active, seen.revision) != (
            user.role == "doctor",
            user.is_active,
            user.revision,
        ):
            anomalies.append(f"scheduling's view of user {user.id} disagrees with identity: {seen}")
        known = booking_users.get(user.id)
        if known is None or (known.full_name, known.role, known.is_active, known.revision) != (
            user.full_name,
            user.role,
            user.is_active,
            user.revision,
        ):
            anomalies.append(f"booking's view of user {user.id} disagrees with identity: {known}")

    anomalies += [
        f"{service}: {n} outbox events never published" for service, n in unpublished(urls).items() if n
    ]
    for name, depth in queue_depths(amqp_url).items():
        if depth and name != "clinic.unrouted":
            where = "dead-letter queue" if name.endswith(".dlq") else "queue"
            anomalies.append(f"{depth} messages left in {where} {name}")

    stored_users = set(users)
    anomalies += [
        f"registered user {i} (201) is not in identity" for i in ledger.people if i not in stored_users
    ]
    for timeslot_id, doctor_id in ledger.timeslots.items():
        doctor = users.get(doctor_id)
        removed_with_doctor = doctor is not None and not doctor.is_active
        if timeslot_id not in timeslots and not removed_with_doctor:
            anomalies.append(f"published timeslot {timeslot_id} (201) is not in scheduling")
    stored_appointments = {a.id: a for a in appointments}
    for appointment_id, seen in ledger.appointments.items():
        stored = stored_appointments.get(appointment_id)
        # A moved appointment: which of two concurrent moves committed last, only the history says.
        moved = appointment_id in ledger.moved
        if stored is None or (None if moved else stored.timeslot_id, stored.patient_id) != (
            None if moved else seen["timeslot_id"],
            seen["patient_id"],
        ):
            anomalies.append(
                f"booked appointment {appointment_id} (201) is not in booking as it was answered"
            )
    anomalies += [f"Idempotency-Key retry not replayed: {m}" for m in ledger.replay_mismatches]
    anomalies += check_history(urls["booking"], appointments)
    return anomalies


def check_history(booking_url: str, appointments: list[Any]) -> list[str]:
    """Each appointment's history tells its story: booked first, then one entry per change, ending
    where the appointment is (its timeslot and its status)."""
    anomalies: list[str] = []
    entries: dict[int, list[Any]] = {}
    for row in rows(
        booking_url,
        "SELECT appointment_id, action, actor_role, from_status, to_status, from_timeslot_id, to_timeslot_id"
        " FROM appointment_history ORDER BY id",
    ):
        entries.setdefault(row.appointment_id, []).append(row)
    for a in appointments:
        story = entries.get(a.id, [])
        if not story or story[0].action != "booked" or [e.action for e in story].count("booked") != 1:
            anomalies.append(f"appointment {a.id}: its history does not start with one booked entry")
            continue
        timeslot, status = story[0].to_timeslot_id, story[0].to_status
        for entry in story[1:]:
            if entry.action == "rescheduled":
                if entry.from_timeslot_id != timeslot:
                    anomalies.append(
                        f"appointment {a.id}: a move from {entry.from_timeslot_id}, not {timeslot}"
                    )
                timeslot = entry.to_timeslot_id
            else:
                if entry.from_status != status:
                    anomalies.append(f"appointment {a.id}: a change from {entry.from_status}, not {status}")
                status = entry.to_status
        if (timeslot, status) != (a.timeslot_id, a.status):
            anomalies.append(
                f"appointment {a.id}: its history ends at timeslot {timeslot}, {status}; "
                f"it is at {a.timeslot_id}, {a.status}"
            )
    return anomalies


# -- running it ------------------------------------------------------------------------------


@dataclass
class Report:
    seconds: float
    ledger: Ledger
    chaos_errors: list[str]
    unsettled: str | None
    anomalies: list[str]
    counts: dict[str, int]
    # After the traffic: how long the system took to settle, and the checker to read everything.
    settle_seconds: float = 0.0
    check_seconds: float = 0.0

    @property
    def unacceptable(self) -> dict[tuple[str, int, str], int]:
        """5xx answers that are not a 502 or 503 problem+json (any 500, any bare text)."""
        return {key: n for key, n in self.ledger.failures.items() if not acceptable(key[1], key[2])}

    @property
    def ok(self) -> bool:
        return (
            not self.anomalies and not self.chaos_errors and self.unsettled is None and not self.unacceptable
        )

    def render(self) -> str:
        lines = [
            f"===== soak: {self.seconds:.0f}s of traffic with faults, settled in {self.settle_seconds:.0f}s,"
            f" checked in {self.check_seconds:.0f}s ====="
        ]
        lines.append(
            "operations (requests, availability = share answered 2xx or 4xx, answers by status;"
            " 0 = no answer):"
        )
        operations = sorted({op for op, _ in self.ledger.answers})

        def availability(statuses: dict[int, int]) -> str:
            total = sum(statuses.values())
            served = sum(n for s, n in statuses.items() if 200 <= s < 500)
            return f"{100 * served / total:6.2f} %" if total else "      -"

        for op in operations:
            statuses = {s: n for (o, s), n in self.ledger.answers.items() if o == op}
            detail = ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items()))
            lines.append(f"  {op:<22} {sum(statuses.values()):>6} {availability(statuses)}  ({detail})")
        everything: Counter[int] = Counter()
        for (_, status), n in self.ledger.answers.items():
            everything[status] += n
        lines.append(f"  {'total':<22} {sum(everything.values()):>6} {availability(dict(everything))}")
        lines.append("5xx and unanswered requests, by cause:")
        causes: Counter[tuple[int, str]] = Counter()
        for (_, status, cause), n in self.ledger.failures.items():
            causes[(status, cause)] += n
        for (status, cause), n in sorted(causes.items()):
            code = cause.removeprefix("gateway: ")
            why = (
                f" - {GATEWAY_CODES[code]}" if cause.startswith("gateway: ") and code in GATEWAY_CODES else ""
            )
            flag = "" if acceptable(status, cause) else "  <-- NOT ACCEPTABLE"
            lines.append(f"  {status or 'none':>4} {cause}{why}: {n}{flag}")
        if not causes:
            lines.append("  none")
        lines.append(f"500 answers: {everything[500]}")
        lines.append("faults injected:")
        lines += [f"  {kind:<26} {n:>4}" for kind, n in sorted(self.ledger.faults.items())] or ["  none"]
        lines.append("in the databases at the end:")
        lines += [f"  {name:<26} {n:>6}" for name, n in self.counts.items()]
        if self.chaos_errors:
            lines.append("faults that could not be injected or healed:")
            lines += [f"  {error}" for error in self.chaos_errors]
        if self.unsettled:
            lines.append(f"NOT SETTLED at the deadline: {self.unsettled}")
        if self.unacceptable:
            lines.append(f"5xx that are not a 502/503 problem+json: {sum(self.unacceptable.values())}")
        lines.append(f"anomalies: {len(self.anomalies)}")
        lines += [f"  - {anomaly}" for anomaly in self.anomalies[:200]]
        return "\n".join(lines)


def soak(
    stack: Stack,
    proxy: TcpProxy,
    amqp_url: str,
    *,
    seconds: float,
    seed: int,
    restart_rabbitmq: bool = False,
    settle_timeout: float = 240.0,
    log: Callable[[str], None] = lambda _: None,
) -> Report:
    """Traffic and faults for ``seconds``, then heal, settle and check (notification-service's
    webhooks and mails too, with the receiver and mail server of ``soak_stack``)."""
    ledger = Ledger()
    outside: Outside = stack.outside  # type: ignore[attr-defined]
    with stack.client() as client:
        admin_token = client.post(
            "/api/auth/login/", json={"email": stack.admin.email, "password": stack.admin.password}
        ).json()["access"]
        outside.subscribe(client, admin_token)
    traffic = Traffic(stack, ledger, admin_token, seed=seed)
    chaos = Chaos(stack, proxy, ledger, traffic, seed=seed, restart_rabbitmq=restart_rabbitmq)
    started = time.monotonic()
    traffic.start()
    chaos.start()
    deadline = started + seconds
    while time.monotonic() < deadline:
        time.sleep(min(10.0, max(0.0, deadline - time.monotonic())))
        requests, faults = sum(ledger.answers.values()), sum(ledger.faults.values())
        log(f"soak: {time.monotonic() - started:.0f}s, {requests} requests, {faults} faults")
    chaos.join()
    traffic.join()
    elapsed = time.monotonic() - started
    log("soak: traffic stopped, every fault healed; waiting for the system to settle")
    unsettled = wait_until_settled(stack, amqp_url, settle_timeout)
    settled_at = time.monotonic()
    anomalies = check(stack, amqp_url, ledger)
    notification_anomalies, notification_counts = check_notifications(rows, stack.database_urls, outside)
    anomalies += notification_anomalies
    counts = {
        "users": rows(stack.database_urls["identity"], "SELECT count(*) FROM users")[0][0],
        "timeslots": rows(stack.database_urls["scheduling"], "SELECT count(*) FROM timeslots")[0][0],
        "appointments": rows(stack.database_urls["booking"], "SELECT count(*) FROM appointments")[0][0],
        "active appointments": rows(
            stack.database_urls["booking"],
            "SELECT count(*) FROM appointments WHERE status IN ('pending', 'confirmed')",
        )[0][0],
        "waitlist offers": rows(stack.database_urls["booking"], "SELECT count(*) FROM waitlist_offers")[0][0],
        "waitlist offers booked": rows(
            stack.database_urls["booking"], "SELECT count(*) FROM waitlist_offers WHERE state = 'accepted'"
        )[0][0],
        "events published": sum(
            rows(url, "SELECT count(*) FROM outbox_events")[0][0] for url in stack.database_urls.values()
        ),
        **notification_counts,
    }
    return Report(
        elapsed,
        ledger,
        chaos.errors,
        unsettled,
        anomalies,
        counts,
        settle_seconds=settled_at - started - elapsed,
        check_seconds=time.monotonic() - settled_at,
    )


@contextmanager
def soak_stack(
    *, workdir: Path, make_database: Callable[[str], str], amqp_url: str, label: str = "soak"
) -> Iterator[tuple[Stack, TcpProxy]]:
    """A started stack (two identity, booking and scheduling replicas) whose broker is behind a TCP
    proxy, with a webhook receiver and a mail server outside (``stack.outside``)."""
    with ExitStack() as resources:
        proxy = resources.enter_context(TcpProxy.for_url(amqp_url))
        outside = Outside.start(resources)
        stack = Stack(
            workdir=workdir,
            database_urls={service: make_database(f"{label}_{service}") for service in SERVICES},
            amqp_url=proxy.url(amqp_url),
            replicas=REPLICAS,
            env={**SOAK_ENV, **outside.environment()},
        )
        stack.outside = outside  # type: ignore[attr-defined]
        resources.callback(stack.close)
        stack.up()
        yield stack, proxy


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.robustness.soak", description=__doc__.split("\n\n")[0]
    )
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--minutes", type=float, help="how long the traffic and the faults last (default 10)")
    length.add_argument("--seconds", type=float)
    parser.add_argument(
        "--seed", type=int, default=None, help="replay a run's choices (printed at the start)"
    )
    parser.add_argument(
        "--restart-rabbitmq",
        action="store_true",
        help="also restart the machine's RabbitMQ (rabbitmqctl stop_app/start_app): it is shared, "
        "so only on a machine of your own",
    )
    parser.add_argument("--keep", action="store_true", help="keep the databases and the vhost afterwards")
    args = parser.parse_args(argv)
    seconds = (
        args.seconds if args.seconds is not None else 60 * (args.minutes if args.minutes is not None else 10)
    )
    seed = args.seed if args.seed is not None else random.randrange(10**6)

    def say(message: str) -> None:
        sys.stdout.write(message + "\n")
        sys.stdout.flush()

    database_server = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    amqp_server = os.environ.get("TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    run_id = f"soak{uuid.uuid4().hex[:6]}"
    databases = DatabaseFactory(normalise_database_url(database_server), run_id)
    vhosts = RabbitVhosts(amqp_server)
    workdir = Path(os.environ.get("SOAK_WORKDIR", f"var/soak/{run_id}")).resolve()
    say(f"soak {run_id}: {seconds:.0f}s, seed {seed}, logs in {workdir}/logs")
    try:
        amqp_url = vhosts(f"clinic_test_{run_id}")
        with soak_stack(workdir=workdir, make_database=databases, amqp_url=amqp_url) as (stack, proxy):
            say(f"soak: stack up on {stack.base_url} ({', '.join(stack.processes)})")
            report = soak(
                stack,
                proxy,
                amqp_url,
                seconds=seconds,
                seed=seed,
                restart_rabbitmq=args.restart_rabbitmq,
                log=say,
            )
        say(report.render())
    finally:
        if not args.keep:
            databases.drop_all()
            vhosts.delete_all()
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
