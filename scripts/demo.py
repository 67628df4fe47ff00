"""Fills a running Clinic stack with demo data, through the public API only.

    make demo                                          # the stack of `make run`, on :8000
    .venv/bin/python scripts/demo.py --base-url http://127.0.0.1:8000

What it makes: a dozen doctors across specialties, with profiles and a week of timeslots
(the bulk endpoint), about twenty patients, and appointments in every status: pending,
confirmed, cancelled (by a patient, a doctor and the admin), completed and no-show (two
short timeslots that start while the script runs). At the end it prints every login.

The admin is the one identity creates at start-up from ADMIN_EMAIL / ADMIN_PASSWORD (which
`make run` passes on from the shell or .env): the script reads the same two variables, the
environment with .env on top like honcho, or --admin-email / --admin-password. Public
registration never makes an admin; for a stack started without them, create one with
`.venv/bin/identity createadmin` and pass its login.

Running it again reuses the demo accounts (a taken email logs in instead), adds the days of
the week ahead that have no timeslots yet, and books a few more appointments.

The gateway allows 10 registrations or logins a minute per client address: on a loopback
gateway each account talks from a loopback address of its own (127.0.0.11, 127.0.0.12, ...);
elsewhere, and whenever a 429 comes anyway, the script waits as Retry-After says.
"""

from __future__ import annotations

import argparse
import ipaddress
import itertools
import os
import random
import socket
import sys
import time
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BASE_URL = "http://127.0.0.1:8000"
DEFAULT_PASSWORD = "Clinic-demo-2026"
EMAIL_DOMAIN = "demo.clinic.example.com"
# Events between the services (a new doctor's profile, a doctor known to scheduling) take well
# under a second; the deadline bounds a broken stack.
EVENT_DEADLINE = 30.0
# The two timeslots that become a completed and a no-show visit start this long after they are
# made; the rest of the run happens meanwhile, so the script rarely has to wait for them.
SOON = timedelta(seconds=10)
MAX_RATE_LIMIT_WAITS = 6


@dataclass(frozen=True)
class DoctorSeed:
    full_name: str
    specialty: str
    years: int
    bio: str
    weekdays: str  # the digits of the working days, Monday = 0
    day_start: str
    day_end: str
    slot_minutes: int
    break_minutes: int = 0


# fmt: off
_DOCTOR_ROWS = [
    # name, specialty, years of experience, bio, weekdays (Monday = 0), day start, day end, minutes, break
    ("Alice Moreau", "Cardiology", 18, "Heart rhythm disorders.", "01234", "09:00", "17:00", 30),
    ("Bruno Keller", "Cardiology", 7, "Heart failure clinic.", "13", "08:00", "12:00", 20, 10),
    ("Chloé Laurent", "Dermatology", 11, "Skin cancer screening, eczema.", "024", "10:00", "16:00", 20),
    ("David Okafor", "Pediatrics", 15, "Children up to 16; vaccinations.", "01234", "08:30", "12:30", 30),
    ("Elena Petrova", "Neurology", 22, "Headache, epilepsy and sleep.", "123", "09:00", "15:00", 45),
    ("Farid Haddad", "Orthopedics", 9, "Sports injuries, knees, shoulders.", "034", "13:00", "18:00", 30),
    ("Grace Lindqvist", "Ophthalmology", 13, "Cataract, glaucoma, eye tests.", "012", "08:00", "13:00", 15),
    ("Hiro Tanaka", "General practice", 5, "Family medicine.", "01234", "08:00", "18:00", 15, 5),
    ("Isabel Ortiz", "Gynecology", 16, "Women's health, prenatal care.", "124", "09:00", "14:00", 30),
    ("Jonas Weber", "Psychiatry", 20, "Anxiety, depression, ADHD.", "024", "10:00", "18:00", 50, 10),
    ("Kavya Rao", "Endocrinology", 8, "Diabetes, thyroid and hormones.", "13", "09:00", "17:00", 30),
    ("Liam O'Brien", "Otolaryngology", 12, "Ear, nose and throat.", "013", "08:00", "12:00", 20),
]
# fmt: on
DOCTORS = [DoctorSeed(*row) for row in _DOCTOR_ROWS]
PATIENTS = [
    "Mia Schneider",
    "Noah Dubois",
    "Olivia Rossi",
    "Pablo García",
    "Quinn Murphy",
    "Rosa Jansen",
    "Samuel Cohen",
    "Tara Nowak",
    "Umar Sheikh",
    "Vera Novak",
    "William Brown",
    "Xiao Chen",
    "Yara Haddad",
    "Zoe Martin",
    "Adam Fischer",
    "Bianca Costa",
    "Carlos Silva",
    "Dana Levi",
    "Emil Berg",
    "Fatima Zahra",
]  # fmt: skip
REASONS = [
    "Check-up.",
    "Persistent cough for two weeks.",
    "Follow-up on blood test results.",
    "Recurring headaches.",
    "Knee pain after running.",
    "Prescription renewal.",
    "Rash on both arms.",
    "Trouble sleeping.",
]


class DemoError(RuntimeError):
    """The stack answered something the demo cannot go on from; the message says what."""


def say(message: str) -> None:
    sys.stdout.write(f"{message}\n")
    sys.stdout.flush()


def email_of(full_name: str) -> str:
    """``Chloé Laurent`` -> ``chloe.laurent@demo.clinic.example.com``."""
    ascii_name = unicodedata.normalize("NFKD", full_name).encode("ascii", "ignore").decode()
    words = ["".join(c for c in word if c.isalnum()) for word in ascii_name.lower().split()]
    return f"{'.'.join(words)}@{EMAIL_DOMAIN}"


def environment() -> dict[str, str]:
    """The process environment with .env on top, as `make run` (honcho) gives the services."""
    env = dict(os.environ)
    dotenv = ROOT / ".env"
    if dotenv.is_file():
        from honcho.environ import parse

        env.update(parse(dotenv.read_text()))
    return env


# -- talking to the gateway ----------------------------------------------------------------


def source_addresses(base_url: str) -> Iterator[str | None]:
    """Client addresses to spread the per-address rate limit over: 127.0.0.x for a loopback
    gateway (when this machine lets us bind them), else the default address every time."""
    host = urlsplit(base_url).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if loopback and ":" not in host and _can_bind("127.0.0.11"):
        return itertools.cycle(f"127.0.0.{n}" for n in range(11, 255))
    return itertools.repeat(None)


def _can_bind(address: str) -> bool:
    try:
        with socket.socket() as sock:
            sock.bind((address, 0))
    except OSError:
        return False
    return True


class Api:
    """An HTTP client of the gateway for one caller (token, source address); waits out 429s."""

    def __init__(self, base_url: str, source_address: str | None, token: str | None = None) -> None:
        transport = httpx.HTTPTransport(local_address=source_address) if source_address else None
        self.http = httpx.Client(base_url=base_url, transport=transport, timeout=30.0)
        self.token = token

    def call(
        self, method: str, path: str, *, expect: tuple[int, ...] = (200,), **kwargs: Any
    ) -> httpx.Response:
        """The response, whose status must be one of ``expect``; a 429 is retried after Retry-After."""
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        for _ in range(MAX_RATE_LIMIT_WAITS + 1):
            try:
                response = self.http.request(method, path, headers=headers, **kwargs)
            except httpx.TransportError as exc:
                raise DemoError(
                    f"{method} {path}: no answer from {self.http.base_url} ({exc}); is the stack running "
                    "(make run), or is it elsewhere (--base-url)?"
                ) from None
            if response.status_code != 429:
                break
            wait = _retry_after(response)
            say(f"  rate limited on {path}: waiting {wait:.0f}s as Retry-After says")
            time.sleep(wait)
        if response.status_code not in expect:
            raise DemoError(f"{method} {path} answered {response.status_code}: {_detail(response)}")
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.call(method, path, **kwargs).json()

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _retry_after(response: httpx.Response) -> float:
    try:
        return max(1.0, float(response.headers.get("retry-after", "6")))
    except ValueError:
        return 6.0


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    if isinstance(body, dict):
        return str(body.get("detail") or body)[:300]
    return str(body)[:300]


def poll(action: Callable[[], Any], *, what: str, deadline: float = EVENT_DEADLINE) -> Any:
    """``action()`` until it does not raise DemoError, for at most ``deadline`` seconds."""
    until = time.monotonic() + deadline
    while True:
        try:
            return action()
        except DemoError as exc:
            if time.monotonic() >= until:
                raise DemoError(f"{what}: still failing after {deadline:.0f}s: {exc}") from None
        time.sleep(0.25)


# -- the demo ------------------------------------------------------------------------------


@dataclass
class Account:
    role: str
    full_name: str
    email: str
    password: str
    id: int
    api: Api
    created: bool


@dataclass
class Demo:
    base_url: str
    password: str
    admin_email: str
    admin_password: str
    addresses: Iterator[str | None]
    seed: int = 7
    accounts: list[Account] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.random = random.Random(self.seed)

    def api(self, token: str | None = None) -> Api:
        return Api(self.base_url, next(self.addresses), token)

    # -- accounts --------------------------------------------------------------------------

    def login(self, email: str, password: str, api: Api) -> str:
        tokens = api.json("POST", "/api/auth/login/", json={"email": email, "password": password})
        return tokens["access"]

    def account(self, role: str, full_name: str) -> Account:
        """The demo account of ``full_name``: registered now, or logged into when it exists."""
        email = email_of(full_name)
        api = self.api()
        body = {"email": email, "password": self.password, "full_name": full_name, "role": role}
        response = api.call("POST", "/api/auth/register/", json=body, expect=(201, 409))
        created = response.status_code == 201
        try:
            api.token = self.login(email, self.password, api)
        except DemoError as exc:
            raise DemoError(
                f"{email} exists but its password is not the demo password ({exc}); "
                "pass the one it has with --password, or use a fresh stack"
            ) from None
        user = api.json("GET", "/api/auth/me/")
        if user["role"] != role:
            raise DemoError(f"{email} exists as a {user['role']}, not a {role}")
        account = Account(role, full_name, email, self.password, user["id"], api, created)
        self.accounts.append(account)
        return account

    def admin(self) -> Account:
        api = self.api()
        try:
            api.token = self.login(self.admin_email, self.admin_password, api)
        except DemoError as exc:
            raise DemoError(
                f"the admin {self.admin_email} cannot log in ({exc}). The admin is created by identity at "
                "start-up from ADMIN_EMAIL/ADMIN_PASSWORD: set them (shell or .env) before `make run`, or "
                "create one with `.venv/bin/identity createadmin`, and give make demo the same values"
            ) from None
        user = api.json("GET", "/api/auth/me/")
        if user["role"] != "admin":
            raise DemoError(f"{self.admin_email} is a {user['role']}, not an admin")
        account = Account(
            "admin", user["full_name"], self.admin_email, self.admin_password, user["id"], api, False
        )
        self.accounts.append(account)
        return account

    # -- doctors ---------------------------------------------------------------------------

    def doctor(self, seed: DoctorSeed) -> Account:
        doctor = self.account("doctor", seed.full_name)
        profile = {"specialty": seed.specialty, "bio": seed.bio, "years_of_experience": seed.years}
        # The profile appears once doctor-service has heard of the new user.
        poll(
            lambda: doctor.api.call("PATCH", "/api/doctors/me/", json=profile),
            what=f"the doctor profile of {doctor.email}",
        )
        return doctor

    def week_of_timeslots(self, doctor: Account, seed: DoctorSeed, first_day: date) -> int:
        """The doctor's working pattern for the 7 days from ``first_day``; days that already
        have timeslots (an earlier run) are left as they are. Returns how many were made."""
        pattern = {
            "date_from": first_day.isoformat(),
            "date_to": (first_day + timedelta(days=6)).isoformat(),
            "weekdays": [int(day) for day in seed.weekdays],
            "day_start": seed.day_start,
            "day_end": seed.day_end,
            "slot_minutes": seed.slot_minutes,
            "break_minutes": seed.break_minutes,
        }
        response = doctor.api.call("POST", "/api/timeslots/bulk/", json=pattern, expect=(201, 409))
        if response.status_code == 201:
            return len(response.json()["created"])
        made = 0  # some days overlap what is there: one day at a time, all or nothing each
        for offset in range(7):
            day = first_day + timedelta(days=offset)
            if str(day.weekday()) not in seed.weekdays:
                continue
            one_day = pattern | {"date_from": day.isoformat(), "date_to": day.isoformat()}
            response = doctor.api.call("POST", "/api/timeslots/bulk/", json=one_day, expect=(201, 409))
            if response.status_code == 201:
                made += len(response.json()["created"])
        return made

    def soon_timeslot(self, doctor: Account) -> dict[str, Any] | None:
        """A 5-minute timeslot starting in a few seconds (to complete or mark as no-show later)."""
        start = (datetime.now(UTC) + SOON).replace(microsecond=0)
        body = {"start_time": _z(start), "end_time": _z(start + timedelta(minutes=5))}
        response = doctor.api.call("POST", "/api/timeslots/", json=body, expect=(201, 409))
        return response.json() if response.status_code == 201 else None

    def free_timeslots(self, api: Api, doctor_id: int) -> list[dict[str, Any]]:
        # A doctor appears in scheduling's listing once scheduling has heard of them.
        page = poll(
            lambda: api.json("GET", f"/api/doctors/{doctor_id}/timeslots/", params={"page_size": 100}),
            what=f"the free timeslots of doctor {doctor_id}",
        )
        return page["results"]

    # -- appointments ----------------------------------------------------------------------

    def book(self, patient: Account, timeslot: dict[str, Any]) -> dict[str, Any] | None:
        body = {"timeslot_id": timeslot["id"], "reason": self.random.choice(REASONS)}
        response = patient.api.call("POST", "/api/appointments/", json=body, expect=(201, 409))
        return response.json() if response.status_code == 201 else None

    def set_status(
        self, api: Api, appointment: dict[str, Any], status: str, reason: str | None = None
    ) -> None:
        body: dict[str, Any] = {"status": status}
        if reason:
            body["cancellation_reason"] = reason
        api.call("PATCH", f"/api/appointments/{appointment['id']}/status/", json=body)

    # -- the whole run ---------------------------------------------------------------------

    def run(self) -> None:
        with self.api() as probe:
            probe.call("GET", "/api/schema/identity/openapi.json")
        say(f"demo: filling the stack at {self.base_url}")
        admin = self.admin()
        say(f"demo: admin {admin.email} logged in")

        doctors = [(self.doctor(seed), seed) for seed in DOCTORS]
        say(f"demo: {len(doctors)} doctors with profiles ({self._new(doctors)} new)")
        patients = [self.account("patient", name) for name in PATIENTS]
        say(f"demo: {len(patients)} patients ({self._new([(p, None) for p in patients])} new)")

        # Two visits that start in a few seconds, to be completed and missed (no-show) at the end.
        visits = self.visits_that_start_soon([doctor for doctor, _ in doctors[:2]], patients[-2:])

        first_day = datetime.now(UTC).date() + timedelta(days=2)  # clear of "now" in any time zone
        made = sum(self.week_of_timeslots(doctor, seed, first_day) for doctor, seed in doctors)
        say(f"demo: {made} new timeslots from {first_day} to {first_day + timedelta(days=6)} (bulk)")

        booked = self.book_appointments(patients, doctors)
        self.vary_statuses(admin, booked)
        self.finish_visits(visits)
        self.summary(admin)

    def book_appointments(
        self, patients: list[Account], doctors: list[tuple[Account, DoctorSeed]]
    ) -> list[tuple[dict[str, Any], Account, Account]]:
        """Each patient books one or two free timeslots with doctors of their choosing."""
        free = {doctor.id: self.free_timeslots(patients[0].api, doctor.id) for doctor, _ in doctors}
        booked = []
        for index, patient in enumerate(patients):
            for turn in range(1 + index % 2):
                doctor, _ = doctors[(index * 3 + turn * 5) % len(doctors)]
                candidates = free[doctor.id]
                while candidates:
                    timeslot = candidates.pop(self.random.randrange(min(len(candidates), 12)))
                    appointment = self.book(patient, timeslot)
                    if appointment:
                        booked.append((appointment, patient, doctor))
                        break
        say(f"demo: {len(booked)} appointments booked")
        return booked

    def visits_that_start_soon(
        self, doctors: list[Account], patients: list[Account]
    ) -> list[tuple[dict[str, Any], Account, str]]:
        """Confirmed appointments in timeslots that start in a few seconds, with their outcome to be."""
        visits = []
        for doctor, patient, outcome in zip(doctors, patients, ("completed", "no_show"), strict=False):
            timeslot = self.soon_timeslot(doctor)
            if timeslot is None:  # an earlier run's is still there
                continue
            body = {"timeslot_id": timeslot["id"], "reason": "Check-up."}
            response = patient.api.call("POST", "/api/appointments/", json=body, expect=(201, 409, 422))
            if response.status_code == 201:
                self.set_status(doctor.api, response.json(), "confirmed")
                visits.append((response.json(), doctor, outcome))
        return visits

    def vary_statuses(self, admin: Account, booked: list[tuple[dict[str, Any], Account, Account]]) -> None:
        """Of the new appointments: some confirmed, some cancelled by the patient, the doctor
        or the admin, the rest left pending."""
        counts: dict[str, int] = {}
        for index, (appointment, patient, doctor) in enumerate(booked):
            kind = index % 6
            if kind in (0, 1):
                self.set_status(doctor.api, appointment, "confirmed")
                outcome = "confirmed"
            elif kind == 2:
                patient.api.call("DELETE", f"/api/appointments/{appointment['id']}/", expect=(204,))
                outcome = "cancelled by the patient"
            elif kind == 3 and index % 12 == 3:
                admin.api.call("DELETE", f"/api/appointments/{appointment['id']}/", expect=(204,))
                outcome = "cancelled by the admin"
            elif kind == 3:
                self.set_status(doctor.api, appointment, "cancelled", "The doctor is away that day.")
                outcome = "cancelled by the doctor"
            else:
                outcome = "pending"
            counts[outcome] = counts.get(outcome, 0) + 1
        say("demo: statuses: " + ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items())))

    def finish_visits(self, visits: list[tuple[dict[str, Any], Account, str]]) -> None:
        """Complete one visit and mark one as a no-show, once their start time has passed."""
        for appointment, doctor, outcome in visits:
            start = datetime.fromisoformat(appointment["start_time"].replace("Z", "+00:00"))
            wait = (start - datetime.now(UTC)).total_seconds() + 1
            if wait > 0:
                say(f"demo: waiting {wait:.0f}s for a visit to start, to mark it {outcome}")
                time.sleep(wait)
            poll(
                lambda a=appointment, o=outcome, d=doctor: self.set_status(d.api, a, o),
                what=f"marking appointment {appointment['id']} {outcome}",
                deadline=10,
            )
        if visits:
            say(f"demo: {len(visits)} visits in the past: " + ", ".join(o for _, _, o in visits))

    def summary(self, admin: Account) -> None:
        doctors = admin.api.json("GET", "/api/doctors/", params={"page_size": 1})["count"]
        statuses = {}
        for status in ("pending", "confirmed", "cancelled", "completed", "no_show"):
            page = admin.api.json("GET", "/api/appointments/", params={"status": status, "page_size": 1})
            statuses[status] = page["count"]
        say(f"\ndemo: the stack now has {doctors} doctors and appointments by status: {statuses}")
        say(f"\nLogins (password of every demo account: {self.password}):")
        width = max(len(a.email) for a in self.accounts)
        for account in self.accounts:
            password = "(ADMIN_PASSWORD)" if account.role == "admin" else account.password
            say(f"  {account.role:<8} {account.email:<{width}}  {password:<18} {account.full_name}")
        say(
            f"\nTry them in Swagger UI: {self.base_url}/api/schema/swagger-ui/ "
            f"(log in, then Authorize with the access token). Redoc: {self.base_url}/api/schema/redoc/"
        )

    @staticmethod
    def _new(pairs: list[tuple[Account, Any]]) -> int:
        return sum(1 for account, _ in pairs if account.created)

    def close(self) -> None:
        for account in self.accounts:
            account.api.close()


def _z(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def main(argv: list[str] | None = None) -> int:
    env = environment()
    parser = argparse.ArgumentParser(
        prog="demo.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--base-url", default=DEFAULT_BASE_URL, help=f"the gateway (default {DEFAULT_BASE_URL})"
    )
    parser.add_argument("--admin-email", default=env.get("ADMIN_EMAIL"), help="default: ADMIN_EMAIL")
    parser.add_argument("--admin-password", default=env.get("ADMIN_PASSWORD"), help="default: ADMIN_PASSWORD")
    parser.add_argument(
        "--password",
        default=DEFAULT_PASSWORD,
        help=f"password of the demo accounts (default {DEFAULT_PASSWORD})",
    )
    args = parser.parse_args(argv)
    if not args.admin_email or not args.admin_password:
        say(
            "demo: no admin login. Set ADMIN_EMAIL and ADMIN_PASSWORD (in the shell or .env) to the "
            "values identity was started with (`make run` passes them on; identity creates that admin "
            "at start-up), or create an admin with `.venv/bin/identity createadmin` and pass "
            "--admin-email/--admin-password."
        )
        return 2
    demo = Demo(
        base_url=args.base_url.rstrip("/"),
        password=args.password,
        admin_email=args.admin_email,
        admin_password=args.admin_password,
        addresses=source_addresses(args.base_url),
    )
    try:
        demo.run()
    except DemoError as exc:
        say(f"demo: failed: {exc}")
        return 1
    finally:
        demo.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
