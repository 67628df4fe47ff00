"""The smoke suite: what a user does, through the compose stack's gateway, in order.

Each check is one step of a story (a patient and a doctor register, log in, the doctor
publishes timeslots, ...); a step needs the ones before it, so the first failure ends the
suite. Waits are bounded by deadlines (events arrive asynchronously); nothing is timed.
"""

from __future__ import annotations

import ssl
import subprocess
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from .engine import STATE, say

if TYPE_CHECKING:
    from .smoke import Compose

PASSWORD = "Blue-Otter-42-smoke"
EVENT_DEADLINE = 120.0
SERVICES = ("identity", "doctor", "scheduling", "booking", "notification")
# Bookings around a restart of the broker container: two before it, the rest one by one
# while it stops and starts again.
STORM_BOOKINGS = 10
STORM_PACE = 1.0


@dataclass
class Results:
    passed: int = 0
    failed: int = 0
    failures: list[str] = field(default_factory=list)

    def ok(self, name: str, seconds: float) -> None:
        self.passed += 1
        say(f"PASS {name} ({seconds:.1f}s)")

    def fail(self, name: str, reason: str) -> None:
        self.failed += 1
        self.failures.append(name)
        say(f"FAIL {name}: {reason}")


class Client:
    """The public API through the gateway over HTTPS, as one user (one access token)."""

    def __init__(self, base_url: str, trusted: ssl.SSLContext, token: str | None = None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=base_url, headers=headers, verify=trusted, timeout=30)

    def call(
        self, method: str, path: str, expect: int | tuple[int, ...] = 200, **kwargs: Any
    ) -> httpx.Response:
        expected = (expect,) if isinstance(expect, int) else expect
        for _ in range(10):
            response = self.http.request(method, path, **kwargs)
            if response.status_code != 429:  # the gateway's auth rate limit: wait as told
                break
            time.sleep(float(response.headers.get("Retry-After", "6")))
        assert response.status_code in expected, (
            f"{method} {path}: expected {expected}, got {response.status_code}: {response.text[:300]}"
        )
        return response

    def json(self, method: str, path: str, expect: int | tuple[int, ...] = 200, **kwargs: Any) -> Any:
        return self.call(method, path, expect, **kwargs).json()


def eventually(what: str, probe: Callable[[], Any], deadline: float = EVENT_DEADLINE) -> Any:
    """``probe()``'s first truthy result; its last AssertionError when the deadline passes."""
    end = time.monotonic() + deadline
    last: Exception | None = None
    while time.monotonic() < end:
        try:
            value = probe()
            if value:
                return value
        except AssertionError as exc:
            last = exc
        time.sleep(0.5)
    raise AssertionError(f"{what}: not within {deadline:.0f}s" + (f" ({last})" if last else ""))


@dataclass
class Story:
    compose: Compose
    base_url: str
    trusted: ssl.SSLContext  # the gateway's certificate (the run's own)
    patient: Client | None = None
    doctor: Client | None = None
    doctor_id: int = 0
    timeslots: list[dict[str, Any]] = field(default_factory=list)

    def anonymous(self) -> Client:
        return Client(self.base_url, self.trusted)

    def account(self, role: str) -> tuple[int, Client]:
        email = f"smoke-{role}-{uuid.uuid4().hex[:10]}@clinic.example.com"
        body = {"email": email, "password": PASSWORD, "full_name": f"Smoke {role.title()}", "role": role}
        anonymous = self.anonymous()
        user = anonymous.json("POST", "/api/auth/register/", 201, json=body)
        tokens = anonymous.json("POST", "/api/auth/login/", json={"email": email, "password": PASSWORD})
        client = Client(self.base_url, self.trusted, tokens["access"])
        me = client.json("GET", "/api/auth/me/")
        assert me["id"] == user["id"] and me["role"] == role, me
        return user["id"], client

    def free(self) -> set[int]:
        page = self.patient.json(
            "GET", f"/api/doctors/{self.doctor_id}/timeslots/", params={"page_size": 100}
        )
        return {timeslot["id"] for timeslot in page["results"]}

    def book(self, timeslot: dict[str, Any]) -> dict[str, Any]:
        body = {"timeslot_id": timeslot["id"], "reason": "compose smoke"}
        return self.patient.json("POST", "/api/appointments/", 201, json=body)

    # -- the steps -------------------------------------------------------------------------

    def services_run_as_their_own_roles_with_no_secret_in_any_environment(self) -> None:
        """Least privilege as deployed: each service's database sessions are its own role's
        (clinic_<name>, password from its secret file), and no secret file's value is in any
        container's environment (what `docker inspect` shows)."""
        for service in SERVICES:
            roles = self.compose.sql(
                service,
                f"SELECT DISTINCT usename FROM pg_stat_activity WHERE datname = 'clinic_{service}' "
                "AND usename IS NOT NULL AND pid <> pg_backend_pid()",
            )
            assert f"clinic_{service}" in roles, (service, roles)
        secrets = {path.name: path.read_text().strip() for path in (STATE / "secrets").iterdir()}
        assert secrets, "no secret files"
        ids = self.compose.run("ps", "-aq", capture_output=True, text=True).stdout.split()
        assert ids, "no containers"
        inspected = subprocess.run(
            ["docker", "inspect", "--format", "{{.Name}} {{json .Config.Env}}", *ids],
            env=self.compose.engine.env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        leaked = sorted(name for name, value in secrets.items() if value and value in inspected)
        assert not leaked, f"secrets in a container's environment: {leaked}"

    def gateway_routes_to_every_service(self) -> None:
        for service in SERVICES:
            document = self.anonymous().json("GET", f"/api/schema/{service}/openapi.json")
            assert document["paths"], service

    def patient_and_doctor_register_and_log_in(self) -> None:
        _, self.patient = self.account("patient")
        self.doctor_id, self.doctor = self.account("doctor")

    def doctor_service_hears_of_the_new_doctor(self) -> None:
        profile = {"specialty": "General practice", "bio": "Compose smoke", "years_of_experience": 3}
        eventually(
            "the doctor's profile at doctor-service (identity's user.registered event)",
            lambda: self.doctor.call("PATCH", "/api/doctors/me/", json=profile),
        )
        found = self.patient.json("GET", f"/api/doctors/{self.doctor_id}/")
        assert found["specialty"] == "General practice", found

    def doctor_publishes_timeslots(self) -> None:
        day = (datetime.now(UTC) + timedelta(days=2)).date().isoformat()
        pattern = {
            "date_from": day,
            "date_to": day,
            "weekdays": list(range(7)),
            "day_start": "08:00",
            "day_end": "13:00",
            "slot_minutes": 20,
            "break_minutes": 0,
        }
        created = self.doctor.json("POST", "/api/timeslots/bulk/", 201, json=pattern)["created"]
        assert len(created) == 15, created
        self.timeslots = created
        ids = {timeslot["id"] for timeslot in created}
        eventually("the timeslots in the patient's listing", lambda: self.free() == ids)

    def patient_books_and_doctor_confirms(self) -> None:
        timeslot = self.timeslots.pop(0)
        appointment = self.book(timeslot)
        assert appointment["status"] == "pending", appointment
        assert timeslot["id"] not in self.free()
        changed = self.doctor.json(
            "PATCH", f"/api/appointments/{appointment['id']}/status/", json={"status": "confirmed"}
        )
        assert changed["status"] == "confirmed", changed
        seen = self.patient.json("GET", f"/api/appointments/{appointment['id']}/")
        assert seen["status"] == "confirmed", seen

    def cancelling_frees_the_timeslot(self) -> None:
        timeslot = self.timeslots.pop(0)
        appointment = self.book(timeslot)
        assert timeslot["id"] not in self.free()
        self.patient.call("DELETE", f"/api/appointments/{appointment['id']}/", 204)
        seen = self.patient.json("GET", f"/api/appointments/{appointment['id']}/")
        assert seen["status"] == "cancelled", seen
        eventually("the cancelled appointment's timeslot free again", lambda: timeslot["id"] in self.free())
        own = self.doctor.json("GET", f"/api/timeslots/{timeslot['id']}/")
        assert own["is_available"] is True, own
        self.timeslots.append(timeslot)

    def links_the_services_build_are_https(self) -> None:
        """Behind the gateway's TLS, every absolute URL a service builds is an https:// one on the
        gateway's address (the services trust the gateway's X-Forwarded-Proto): a calendar feed
        URL (with its secret) that works, paging links of the REST API and of FHIR, the FHIR base
        in the CapabilityStatement; and answers carry HSTS."""
        feed = self.patient.call("GET", "/api/calendar/feed/")
        assert feed.headers["strict-transport-security"].startswith("max-age="), feed.headers
        url = feed.json()["url"]
        assert url.startswith(f"{self.base_url}/api/calendar/feed.ics?token="), url
        calendar = self.anonymous().call("GET", url)
        assert calendar.text.startswith("BEGIN:VCALENDAR"), calendar.text[:100]
        path = f"/api/doctors/{self.doctor_id}/timeslots/"
        page = self.patient.json("GET", path, params={"page_size": 1})
        assert page["next"] and page["next"].startswith(f"{self.base_url}{path}?"), page["next"]
        bundle = self.patient.json(
            "GET", "/fhir/Slot", params={"schedule": f"Schedule/{self.doctor_id}", "_count": 1}
        )
        links = {link["relation"]: link["url"] for link in bundle["link"]}
        assert links["next"].startswith(f"{self.base_url}/fhir/Slot?"), links
        assert bundle["entry"][0]["fullUrl"].startswith(f"{self.base_url}/fhir/Slot/"), bundle["entry"]
        statement = self.anonymous().json("GET", "/fhir/metadata")  # the docs app's
        assert statement["implementation"]["url"] == f"{self.base_url}/fhir", statement["implementation"]

    def docs_pages_load(self) -> None:
        anonymous = self.anonymous()
        merged = anonymous.json("GET", "/api/schema/openapi.json")
        for path in ("/api/auth/login/", "/api/doctors/", "/api/timeslots/", "/api/appointments/"):
            assert path in merged["paths"], f"{path} missing from the merged document"
        for page in ("/api/schema/swagger-ui/", "/api/schema/redoc/"):
            response = anonymous.call("GET", page)
            assert response.headers["content-type"].startswith("text/html"), page
            assert "/api/schema/openapi.json" in response.text, page

    def broker_restart_during_bookings_loses_no_event(self) -> None:
        """Bookings go on while the broker container restarts; each one's `booked` event is
        published by booking's outbox and handled by scheduling (its inbox has the event), and
        every booked timeslot ends up `booked`."""
        storm = self.timeslots[:STORM_BOOKINGS]
        assert len(storm) == STORM_BOOKINGS
        booked: list[int] = []
        during_restart: list[int] = []
        errors: list[str] = []
        restart: subprocess.Popen | None = None
        restarting = threading.Event()

        def book_all() -> None:
            for index, timeslot in enumerate(storm):
                if index == 2:
                    restarting.wait(timeout=EVENT_DEADLINE)
                if index >= 2:
                    time.sleep(STORM_PACE)  # spread over the broker's stop and start
                try:
                    self.book(timeslot)
                except AssertionError as exc:
                    errors.append(str(exc))
                    continue
                booked.append(timeslot["id"])
                if restart is not None and restart.poll() is None:
                    during_restart.append(timeslot["id"])

        worker = threading.Thread(target=book_all)
        worker.start()
        try:
            eventually("the first bookings", lambda: len(booked) + len(errors) >= 2)
            restart = self.compose.start("restart", "rabbitmq")
            restarting.set()
        finally:
            restarting.set()
            worker.join()
        assert restart is not None and restart.wait() == 0, "docker compose restart rabbitmq failed"
        assert not errors, errors
        assert during_restart, "no booking was made while the broker restarted"
        say(f"{len(during_restart)} of {len(booked)} bookings made while the broker restarted")
        ids = ",".join(str(timeslot_id) for timeslot_id in booked)

        def delivered() -> bool:
            unpublished = self.compose.sql(
                "booking", "SELECT count(*) FROM outbox_events WHERE published_at IS NULL"
            )
            assert unpublished == ["0"], f"{unpublished[0]} booking events not yet published"
            events = self.compose.sql(
                "booking",
                "SELECT id FROM outbox_events WHERE event_type = 'booking.appointment.booked'"
                f" AND (payload->'data'->>'timeslot_id')::bigint IN ({ids})",
            )
            assert len(events) == len(booked), f"{len(events)} booked events for {len(booked)} bookings"
            quoted = ",".join(f"'{event}'" for event in events)
            handled = self.compose.sql(
                "scheduling", f"SELECT count(*) FROM processed_events WHERE event_id IN ({quoted})"
            )
            assert handled == [str(len(events))], f"scheduling handled {handled[0]} of {len(events)}"
            states = self.compose.sql("scheduling", f"SELECT state FROM timeslots WHERE id IN ({ids})")
            assert states == ["booked"] * len(booked), states
            return True

        eventually("every booking's event delivered after the broker restart", delivered)

    def events_flow_after_the_restart(self) -> None:
        doctor_id, doctor = self.account("doctor")
        eventually(
            "a doctor registered after the broker restart at doctor-service",
            lambda: doctor.call("GET", "/api/doctors/me/"),
        )
        assert doctor_id


def run_suite(compose: Compose, base_url: str, certificate: Path, results: Results) -> None:
    story = Story(compose, base_url, ssl.create_default_context(cafile=str(certificate)))
    steps = [
        ("the gateway routes to every service", story.gateway_routes_to_every_service),
        (
            "services run as their own roles, no secret in any environment",
            story.services_run_as_their_own_roles_with_no_secret_in_any_environment,
        ),
        ("a patient and a doctor register and log in", story.patient_and_doctor_register_and_log_in),
        ("doctor-service hears of the new doctor (event)", story.doctor_service_hears_of_the_new_doctor),
        ("the doctor publishes timeslots the patient sees", story.doctor_publishes_timeslots),
        ("the patient books, the doctor confirms", story.patient_books_and_doctor_confirms),
        ("cancelling frees the timeslot", story.cancelling_frees_the_timeslot),
        ("links the services build are https://", story.links_the_services_build_are_https),
        ("the API docs pages load", story.docs_pages_load),
        (
            "a broker restart during bookings loses no event",
            story.broker_restart_during_bookings_loses_no_event,
        ),
        ("events flow after the broker restart", story.events_flow_after_the_restart),
    ]
    say(f"running the suite through the gateway at {base_url}")
    for index, (name, step) in enumerate(steps):
        started = time.monotonic()
        try:
            step()
        except Exception as exc:  # noqa: BLE001 - any error is this step's failure
            reason = str(exc) if isinstance(exc, AssertionError) else traceback.format_exc(limit=3)
            results.fail(name, reason)
            for skipped, _ in steps[index + 1 :]:
                say(f"not run: {skipped}")
            return
        results.ok(name, time.monotonic() - started)
