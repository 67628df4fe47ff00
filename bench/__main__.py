"""``python -m bench`` (``make bench``): seed, load the gateway, print and save one table.

    make bench                                   # a stack of its own, default settings
    make bench BENCH_ARGS="--duration 5"         # shorter phases
    make bench BENCH_ARGS="--attach http://127.0.0.1:8000"   # the stack of `make run`

bench/README.md explains the phases and how to read the table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psycopg

from bench import profile, report, scenarios, webhooks
from bench.cpu import CpuMeter
from bench.load import Result, combined, ensure_wrk, run_wrk, write_requests
from bench.memory import MemorySampler
from bench.seed import BOOKED_EVERY, SLOTS_PER_DOCTOR, Batch, allocate, seed
from bench.target import DEFAULT_AMQP, DEFAULT_POSTGRES, ROOT, AttachedStack, OwnStack, Target
from bench.tokens import Minter

CEILING_PATH = "/api/bench/ceiling/"
READS = (
    ("2", "GET /api/auth/me/", "me"),
    ("3", "GET /api/doctors/?search=cardio", "search"),
    ("4", "GET /api/doctors/{id}/timeslots/?date=…", "timeslots"),
    ("5", "GET /api/appointments/me/", "appointments"),
)
READ_LINES = 20_000
# Row 6k: rounds of keyed and plain bookings, alternated; each round's timeslots (at most this
# many, ample for half a phase's duration at a few hundred bookings a second).
PAIRED_ROUNDS = 6
PAIRED_SLICE = 2_000

_started = time.monotonic()


def say(message: str) -> None:
    sys.stdout.write(f"bench [{time.monotonic() - _started:5.0f}s] {message}\n")
    sys.stdout.flush()


PHASES = ("1", "2", "3", "4", "5", "6", "6k", "6r", "7", "8", "9", "10")


def phase_list(text: str) -> set[str]:
    phases = {part.strip() for part in text.split(",") if part.strip()}
    unknown = phases - set(PHASES)
    if unknown:
        raise argparse.ArgumentTypeError(f"no phase {', '.join(sorted(unknown))} (phases are 1-10, 6k, 6r)")
    return phases


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    where = parser.add_argument_group("the stack")
    where.add_argument(
        "--attach",
        metavar="URL",
        help="drive a running stack (`make run`) at this gateway URL instead of starting one; its "
        "gateway needs GATEWAY_BENCH_ROUTES=1 for the ceiling, and the seed is added to its databases",
    )
    where.add_argument(
        "--postgres-url",
        default=os.environ.get("TEST_DATABASE_URL") or DEFAULT_POSTGRES,
        help="server for the bench's own databases (default: TEST_DATABASE_URL or the local server)",
    )
    where.add_argument(
        "--amqp-url",
        default=os.environ.get("TEST_AMQP_URL") or DEFAULT_AMQP,
        help="RabbitMQ server for the bench's own vhost (default: TEST_AMQP_URL or the local server)",
    )
    where.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for every process of the bench's own stack (e.g. WEB_CONCURRENCY=2); repeatable",
    )
    where.add_argument("--keep", action="store_true", help="keep the own stack's databases, vhost and logs")

    load = parser.add_argument_group("load")
    load.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    load.add_argument("--duration", type=float, default=10, help="seconds measured per wrk phase (10)")
    load.add_argument("--warmup", type=float, default=2, help="seconds of unmeasured warm-up before each (2)")
    load.add_argument("--threads", type=int, default=1, help="wrk threads (1: wrk shares the cores)")
    load.add_argument("--users", type=int, default=2000, help="distinct patients whose tokens the reads use")

    data = parser.add_argument_group("data (1x)")
    data.add_argument("--doctors", type=int, default=1000)
    data.add_argument("--patients", type=int, default=10_000)
    data.add_argument("--scale", type=int, default=10, help="data multiplier of phase 9 (0 skips it)")

    scen = parser.add_argument_group("scenarios 7 and 8")
    scen.add_argument("--race-rounds", type=int, default=50)
    scen.add_argument("--racers", type=int, default=100)
    scen.add_argument("--cancellations", type=int, default=200)
    scen.add_argument("--propagation-concurrency", type=int, default=4)
    scen.add_argument(
        "--webhooks", type=int, default=100, help="bookings whose webhook delay phase 10 measures"
    )

    parser.add_argument(
        "--output", type=Path, default=ROOT / "bench" / "results" / "latest.md", help="where the table goes"
    )
    parser.add_argument("--seed", type=int, default=7, help="random seed of the request mix")
    parser.add_argument(
        "--phases",
        type=phase_list,
        default=set(PHASES),
        metavar="N,N,…",
        help="run only these phases (e.g. 1,6; default all: 1-10)",
    )
    parser.add_argument(
        "--profile",
        type=phase_list,
        default=set(),
        metavar="N,N,…",
        help="record py-spy profiles of every service during these phases (raw stacks and a summary "
        "in bench/results/profiles/)",
    )
    return parser.parse_args(argv)


# -- helpers ----------------------------------------------------------------------------------


_BOOKING_EVENTS = "SELECT count(*) FROM {table} WHERE event_type LIKE 'booking.%'"


def settle(target: Target, timeout: float = 120.0) -> None:
    """Wait until every outbox is published, scheduling holds nothing (all events applied) and
    notification-service has handled every booking event (its work would bill the next phase)."""
    unpublished = "SELECT count(*) FROM outbox_events WHERE published_at IS NULL"
    checks = dict.fromkeys(("identity", "doctor", "scheduling", "booking"), unpublished)
    deadline = time.monotonic() + timeout
    while True:
        pending = {}
        for service, query in checks.items():
            with psycopg.connect(target.database_urls[service]) as conn:
                pending[service] = conn.execute(query).fetchone()[0]
        with psycopg.connect(target.database_urls["scheduling"]) as conn:
            pending["held"] = conn.execute("SELECT count(*) FROM timeslots WHERE state = 'held'").fetchone()[
                0
            ]
        if "notification" in target.database_urls:
            with psycopg.connect(target.database_urls["booking"]) as conn:
                sent = conn.execute(_BOOKING_EVENTS.format(table="outbox_events")).fetchone()[0]
            with psycopg.connect(target.database_urls["notification"]) as conn:
                handled = conn.execute(_BOOKING_EVENTS.format(table="processed_events")).fetchone()[0]
            pending["notification"] = max(sent - handled, 0)
        if not any(pending.values()):
            return
        if time.monotonic() > deadline:
            say(f"warning: still unsettled after {timeout:.0f}s: {pending}")
            return
        time.sleep(0.2)


class Population:
    """The seeded batches, and random picks over all of them."""

    def __init__(self, minter: Minter, rng: random.Random) -> None:
        self.batches: list[Batch] = []
        self.minter = minter
        self.rng = rng

    def _batch(self, weight: Callable[[Batch], int]) -> Batch:
        return self.rng.choices(self.batches, weights=[weight(b) for b in self.batches])[0]

    def patient(self) -> int:
        return self._batch(lambda b: b.patients).random_patient(self.rng)

    def doctor_and_day(self) -> tuple[int, str]:
        batch = self._batch(lambda b: b.doctors)
        return batch.random_doctor(self.rng), batch.random_day(self.rng).isoformat()

    def patient_token(self, patient_id: int) -> str:
        return self.minter.token(patient_id, "patient")


def read_lines(kind: str, population: Population, users: int) -> Iterator[tuple[str, str, str, str]]:
    # The same number of distinct patients (and so tokens) at 1x and 10x: only the data grows.
    pool = [population.patient_token(population.patient()) for _ in range(users)]
    rng = population.rng
    for _ in range(READ_LINES):
        token = rng.choice(pool)
        if kind == "ceiling":
            yield "GET", CEILING_PATH, token, ""
        elif kind == "me":
            yield "GET", "/api/auth/me/", token, ""
        elif kind == "search":
            yield "GET", "/api/doctors/?search=cardio", token, ""
        elif kind == "timeslots":
            doctor, day = population.doctor_and_day()
            yield "GET", f"/api/doctors/{doctor}/timeslots/?date={day}", token, ""
        elif kind == "appointments":
            # A patient of the pool reads their own appointments (two each, seeded).
            yield "GET", "/api/appointments/me/", token, ""


def free_slots(batch: Batch) -> Iterator[tuple[int, int]]:
    """(doctor index, slot) of the batch's seeded free timeslots, consecutive ones on other doctors."""
    for s in range(SLOTS_PER_DOCTOR):
        if not batch.is_booked(s):
            for i in range(1, batch.doctors + 1):
                yield i, s


def booked_slots(batch: Batch) -> Iterator[tuple[int, int]]:
    for s in range(0, SLOTS_PER_DOCTOR, BOOKED_EVERY):
        for i in range(1, batch.doctors + 1):
            yield i, s


def admin_token(target: Target) -> str | None:
    """An admin's access token for phase 10: the own stack's first admin, or ADMIN_EMAIL and
    ADMIN_PASSWORD (shell or .env) for an attached one; None (phase skipped) without them."""
    stack = getattr(target, "stack", None)
    email = stack.admin.email if stack is not None else os.environ.get("ADMIN_EMAIL")
    password = stack.admin.password if stack is not None else os.environ.get("ADMIN_PASSWORD")
    if not email or not password:
        say("10 skipped: no admin credentials (ADMIN_EMAIL, ADMIN_PASSWORD)")
        return None
    response = httpx.post(
        target.base_url + "/api/auth/login/", json={"email": email, "password": password}, timeout=10
    )
    return response.json()["access"] if response.status_code == 200 else None


def git_describe() -> str:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True)
        return commit + (" + uncommitted changes" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def versions(target: Target) -> str:
    parts = [f"Python {platform.python_version()}"]
    try:
        traefik = subprocess.run(
            [str(Path(sys.executable).parent / "traefik"), "version"], capture_output=True, text=True
        ).stdout.split()
        parts.append(f"Traefik {traefik[traefik.index('Version:') + 1]}")
    except (OSError, ValueError, IndexError):
        pass
    try:
        with psycopg.connect(target.database_urls["identity"]) as conn:
            parts.append(f"PostgreSQL {conn.execute('SHOW server_version').fetchone()[0].split()[0]}")
    except psycopg.Error:
        pass
    return ", ".join(parts)


def memory_of_machine() -> str:
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        return f"{kib / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        return "?"


# -- the run ------------------------------------------------------------------------------------


def run(
    args: argparse.Namespace, target: Target, wrk: str, workdir: Path
) -> tuple[list[report.Row], MemorySampler, str]:
    rng = random.Random(args.seed)
    sampler = MemorySampler(target.pids).start()
    tag = f"{datetime.now():%H%M%S}{rng.randrange(1000):03d}"
    urls = target.database_urls

    say(f"seeding {args.doctors:,} doctors and {args.patients:,} patients into {target.description}")
    batch = allocate(
        urls, tag=f"{tag}a", doctors=args.doctors, patients=args.patients, tz=target.clinic_timezone
    )
    seed(urls, batch, say)
    minter = Minter(target.jwt_private_key_file, issuer=target.jwt_issuer, audience=target.jwt_audience)
    population = Population(minter, rng)
    population.batches.append(batch)
    settle(target)

    meter = CpuMeter(target.pids, [urlsplit(url).path.lstrip("/") for url in urls.values()])

    def metered(phase: str, measure: Callable[[], Result]) -> Result:
        profiling = (
            profile.recording(phase, target.pids, args.output.parent / "profiles", say)
            if phase in args.profile or phase.split(".")[0] in args.profile
            else nullcontext()
        )
        with profiling:
            before, started = meter.snapshot(), time.monotonic()
            result = measure()
            wall, after = time.monotonic() - started, meter.snapshot()
        result.cpu, result.other_cores = meter.per_request(before, after, result.requests, wall)
        return result

    def wrk_phase(
        name: str,
        lines: list[tuple[str, str, str, str]],
        *,
        expected=(200,),
        once=False,
        duration: float | None = None,
    ) -> Result:
        file = workdir / f"{name}.tsv"
        write_requests(file, lines)
        return run_wrk(
            wrk,
            target.base_url,
            file,
            name=name,
            connections=args.connections,
            duration=duration or args.duration,
            threads=args.threads,
            expected=expected,
            once=once,
        )

    def warm_up(
        name: str, lines: list[tuple[str, str, str, str]], duration: float | None = None, **options: object
    ) -> None:
        """Unmeasured load for ``--warmup`` seconds (caches, pools, prepared statements)."""
        warm = workdir / f"{name}-warmup.tsv"
        write_requests(warm, lines)
        run_wrk(
            wrk,
            target.base_url,
            warm,
            name="warm-up",
            connections=args.connections,
            duration=duration or args.warmup,
            threads=args.threads,
            **options,
        )

    def read_phase(phase: str, kind: str, label: str, *, short: bool = False) -> Result:
        """``short``: half the warm-up and half the measured time (the ceiling's re-measurements)."""
        lines = list(read_lines(kind, population, args.users))
        scale = 0.5 if short else 1.0
        if args.warmup > 0:
            warm_up(kind, lines, duration=args.warmup * scale)
        result = metered(phase, lambda: wrk_phase(kind, lines, duration=args.duration * scale))
        say(f"{label}: {result.rps:,.0f} req/s, p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms, "
            f"{result.errors} errors {result.statuses}")  # fmt: skip
        return result

    rows: list[report.Row] = []

    # 1. the ceiling
    probe_token = population.patient_token(batch.patient_id(1))
    with httpx.Client(base_url=target.base_url, timeout=10) as client:
        probe = client.get(CEILING_PATH, headers={"Authorization": f"Bearer {probe_token}"})
    if "1" not in args.phases:
        ceiling = None
    elif probe.status_code == 200:
        ceiling = read_phase("1", "ceiling", "1 ceiling")
    else:
        say(f"the ceiling route answered {probe.status_code}: set GATEWAY_BENCH_ROUTES=1 for the gateway")
        ceiling = None
    ceiling_row = report.Row("1", "ceiling: ForwardAuth + trivial handler", ceiling, target="ceiling")
    rows.append(ceiling_row)

    # The machine's speed drifts during a run (the same request's CPU time moved by up to 30 %
    # between phases a few minutes apart), so each row is compared with the ceiling measured
    # right before and right after it: once more after every measured phase (half as long).
    ceilings = [ceiling] if ceiling else []

    def ceiling_after(phase: str) -> float | None:
        """Measure the ceiling again; the mean of it and the one before (the phase's own ceiling)."""
        if not ceilings:
            return None
        again = read_phase(f"1/{phase}", "ceiling", f"1 ceiling again, after {phase}", short=True)
        ceilings.append(again)
        return (ceilings[-2].rps + again.rps) / 2

    # 2-5. authenticated reads
    one_x: dict[str, report.Row] = {}
    for number, label, kind in READS:
        if number not in args.phases:
            continue
        result = read_phase(number, kind, f"{number} {label}")
        one_x[kind] = report.Row(number, label, result, ceiling=ceiling_after(number), target="≥40%")
        rows.append(one_x[kind])

    # 6. bookings: every request a different free timeslot and patient (the first half of each
    # doctor's timeslots; 6k takes its own from the end of that half, 6r the second half).
    slots = (slot for slot in free_slots(batch) if slot[1] < SLOTS_PER_DOCTOR // 2)
    race_slots = [next(slots) for _ in range(args.race_rounds)]
    booking_lines = []
    for n, (i, s) in enumerate(slots):
        patient = batch.patient_id(n % batch.patients + 1)
        body = f'{{"timeslot_id": {batch.timeslot_id(i, s)}}}'
        booking_lines.append(("POST", "/api/appointments/", population.patient_token(patient), body))
    # Phase 10's bookings are set aside first: 6 books from the front of the rest, 6k from its end.
    webhook_lines = booking_lines[-args.webhooks :] if args.webhooks > 0 else []
    booking_lines = booking_lines[: len(booking_lines) - len(webhook_lines)]
    if "6" in args.phases:
        warm_count = min(len(booking_lines) // 10, 3000) if args.warmup > 0 else 0
        if warm_count:
            warm_up("booking", booking_lines[:warm_count], expected=(201,), once=True)
            settle(target)
        booking = metered(
            "6", lambda: wrk_phase("booking", booking_lines[warm_count:], expected=(201,), once=True)
        )
        say(f"6 POST /api/appointments/: {booking.rps:,.0f} req/s, p50 {booking.p50_ms:.1f} ms, "
            f"p99 {booking.p99_ms:.1f} ms, {booking.errors} errors {booking.statuses}")  # fmt: skip
        settle(target)  # the events of the last bookings applied before the ceiling is measured again
        rows.append(
            report.Row(
                "6",
                "POST /api/appointments/ (new timeslot and patient each)",
                booking,
                ceiling=ceiling_after("6"),
                target="≥20%",
            )  # fmt: skip
        )

    # 6k. what an Idempotency-Key costs: keyed bookings against the same kind of bookings without
    # a key, in alternating rounds (plain then keyed, keyed then plain, ...) measured minutes
    # apart at most, so the machine's drift cancels out of the comparison. Each round books its
    # own slice of timeslots, taken from the end of the list (phase 6 books from its front); the
    # two kinds take every other line of it, so neither gets the other's doctors and patients
    # (with halves, identity's share alone differed by 200 µs a booking, changing sides with them).
    if "6k" in args.phases:
        rounds = PAIRED_ROUNDS
        # Phase 6 booked from the front: at most its warm-up, what it counted and what was in flight.
        used = warm_count + booking.requests + booking.errors + args.connections if "6" in args.phases else 0
        size = min(PAIRED_SLICE, (len(booking_lines) - used) // (2 * rounds + 1))
        spare = booking_lines[len(booking_lines) - size * (2 * rounds + 1) :]
        warm, spare = spare[-size:], spare[: -size or None]
        plain_lines, keyed_lines = spare[0::2], [(*line, uuid.uuid4().hex) for line in spare[1::2]]
        slices = [plain_lines[i * size : (i + 1) * size] for i in range(rounds)]
        keyed_slices = [keyed_lines[i * size : (i + 1) * size] for i in range(rounds)]
        keyed_slices.append([(*line, uuid.uuid4().hex) for line in warm])
        if args.warmup > 0:  # the keyed path's own first statements (phase 6 warmed the rest)
            warm_up("booking-keyed", keyed_slices.pop(), expected=(201,), once=True)
            settle(target)
        plain_runs: list[Result] = []
        keyed_runs: list[Result] = []
        for n in range(rounds):
            order = (("plain", slices[n]), ("keyed", keyed_slices[n]))
            for kind, lines in order if n % 2 == 0 else reversed(order):
                runs = plain_runs if kind == "plain" else keyed_runs
                phase = f"6k.{n + 1}" if kind == "keyed" else f"6k/plain.{n + 1}"
                runs.append(metered(phase, lambda kind=kind, lines=lines: wrk_phase(
                    f"booking-{kind}", lines, expected=(201,), once=True, duration=args.duration / 2
                )))  # fmt: skip
                settle(target)
        plain, result = combined("6k/plain", plain_runs), combined("6k", keyed_runs)
        say(f"6k POST /api/appointments/ + Idempotency-Key: {result.rps:,.0f} req/s against {plain.rps:,.0f} "
            f"without a key in the same {rounds} rounds; p99 {result.p99_ms:.1f} ms, {result.errors} errors "
            f"{result.statuses}")  # fmt: skip
        result.note = report.paired_note(
            result, plain, rounds, args.duration / 2, list(zip(plain_runs, keyed_runs, strict=True))
        )
        rows.append(
            report.Row(
                "6k",
                "POST /api/appointments/ with an Idempotency-Key",
                result,
                ceiling=ceiling_after("6k"),
                target="≤10% slower",
                compare_to=report.Row("6k/plain", "the same rounds without a key", plain),
                compared_with="no key",
            )  # fmt: skip
        )

    # 6r. reschedules: seeded appointments (from the last doctors') each moved once to a free
    # timeslot of its doctor in the second half of the doctor's timeslots
    if "6r" in args.phases:
        with psycopg.connect(urls["booking"]) as conn:
            appointments = conn.execute(
                "SELECT id, patient_id, doctor_id FROM appointments WHERE doctor_id BETWEEN %s AND %s"
                " AND status IN ('pending', 'confirmed') ORDER BY doctor_id DESC, id",
                (batch.doctor_id(1), batch.doctor_id(batch.doctors)),
            ).fetchall()
        spare = {
            i: [s for s in range(SLOTS_PER_DOCTOR // 2, SLOTS_PER_DOCTOR) if not batch.is_booked(s)]
            for i in range(1, batch.doctors + 1)
        }
        moves = []
        for appointment_id, patient_id, doctor_id in appointments:
            free = spare[doctor_id - batch.doctor_id(0)]
            if free:
                body = f'{{"timeslot_id": {batch.timeslot_id(doctor_id - batch.doctor_id(0), free.pop())}}}'
                path = f"/api/appointments/{appointment_id}/reschedule/"
                moves.append(("POST", path, population.patient_token(patient_id), body))
        result = metered("6r", lambda: wrk_phase("reschedule", moves, expected=(200,), once=True))
        say(f"6r reschedules: {result.rps:,.0f} req/s, p50 {result.p50_ms:.1f} ms, "
            f"p99 {result.p99_ms:.1f} ms, {result.errors} errors {result.statuses}")  # fmt: skip
        settle(target)
        rows.append(
            report.Row(
                "6r",
                "POST /api/appointments/{id}/reschedule/ (a different appointment each)",
                result,
                ceiling=ceiling_after("6r"),
                target="≥10%",
            )  # fmt: skip
        )

    # 7. the race
    if "7" in args.phases:
        rounds = []
        for r, (i, s) in enumerate(race_slots):
            tokens = [
                population.patient_token(batch.patient_id((r * args.racers + k) % batch.patients + 1))
                for k in range(args.racers)
            ]
            rounds.append(scenarios.RaceRound(batch.timeslot_id(i, s), tokens))

        def active_appointments(timeslot_id: int) -> int:
            with psycopg.connect(urls["booking"]) as conn:
                return conn.execute(
                    "SELECT count(*) FROM appointments "
                    "WHERE timeslot_id = %s AND status IN ('pending', 'confirmed')",
                    (timeslot_id,),
                ).fetchone()[0]

        say(f"7 {args.race_rounds} rounds of {args.racers} patients racing for one timeslot")
        race = (
            metered("7", lambda: scenarios.race(target.base_url, rounds, active_appointments))
            if rounds
            else None
        )
        if race:
            say(f"7 race: {race.note}; p50 {race.p50_ms:.1f} ms, p99 {race.p99_ms:.1f} ms, {race.statuses}")
        rows.append(
            report.Row(
                "7",
                f"{args.racers} patients racing for one timeslot ×{args.race_rounds}",
                race,
                target="one winner",
            )  # fmt: skip
        )
        settle(target)

    # 8. cancel -> free again
    if "8" in args.phases:
        chosen = []
        for i, s in booked_slots(batch):
            if len(chosen) >= args.cancellations:
                break
            chosen.append((batch.timeslot_id(i, s), batch.doctor_id(i), batch.slot_day(s).isoformat()))
        with psycopg.connect(urls["booking"]) as conn:
            found = {
                timeslot: (appointment, patient)
                for appointment, patient, timeslot in conn.execute(
                    "SELECT id, patient_id, timeslot_id FROM appointments "
                    "WHERE timeslot_id = ANY(%s) AND status IN ('pending', 'confirmed')",
                    ([c[0] for c in chosen],),
                )
            }
        items = [
            scenarios.Cancellation(found[t][0], population.patient_token(found[t][1]), doctor, t, day)
            for t, doctor, day in chosen
            if t in found
        ]
        say(f"8 cancelling {len(items)} appointments and waiting for their timeslots to be free again")
        propagation = (
            scenarios.propagation(target.base_url, items, concurrency=args.propagation_concurrency)
            if items
            else None
        )
        if propagation:
            say(
                f"8 propagation: p50 {propagation.p50_ms:.0f} ms, p99 {propagation.p99_ms:.0f} ms; "
                f"{propagation.note}"
            )
        rows.append(
            report.Row(
                "8",
                f"cancel → timeslot free again ({len(items)} cancellations)",
                propagation,
                target="p99 < 250 ms",
            )  # fmt: skip
        )
        settle(target)

    # 9. the same reads with more data
    if args.scale > 1 and "9" in args.phases:
        more_doctors = args.doctors * (args.scale - 1)
        more_patients = args.patients * (args.scale - 1)
        say(
            f"9 seeding {more_doctors:,} more doctors and {more_patients:,} more patients "
            f"({args.scale}× data)"
        )
        big = allocate(
            urls, tag=f"{tag}b", doctors=more_doctors, patients=more_patients, tz=target.clinic_timezone
        )
        seed(urls, big, say)
        population.batches.append(big)
        settle(target)
        if ceilings:  # a ceiling of its own right before the first 10x read
            ceilings.append(read_phase("1/9", "ceiling", "1 ceiling again, before 9", short=True))
        for number, label, kind in READS:
            result = read_phase(f"9.{number}", kind, f"9.{number} {label} ({args.scale}×)")
            rows.append(
                report.Row(
                    f"9.{number}",
                    f"{label} at {args.scale}× data",
                    result,
                    ceiling=ceiling_after(f"9.{number}"),
                    target="≤20% slower",
                    compare_to=one_x.get(kind),
                )  # fmt: skip
            )

    # 10. a booking's webhook: from the 201 to the receiver (notification-service)
    if "10" in args.phases and args.webhooks:
        admin = admin_token(target)
        chosen = [(line[2], json.loads(line[3])["timeslot_id"]) for line in webhook_lines]
        say(f"10 booking {len(chosen)} appointments and timing their webhooks")
        delay = (
            metered("10", lambda: webhooks.webhook_delay(target.base_url, admin, chosen)) if admin else None
        )
        if delay:
            p50, p99 = delay.p50_ms or 0, delay.p99_ms or 0
            say(f"10 webhook delay: p50 {p50:.0f} ms, p99 {p99:.0f} ms; {delay.note}")
        rows.append(
            report.Row(
                "10",
                f"booking → its webhook at a receiver ({len(chosen)} bookings)",
                delay,
                target="delivery p99 < 2 s",
            )  # fmt: skip
        )

    if ceilings:
        report.summarise_ceilings(ceiling_row, ceilings)

    sampler.stop()
    for row in rows:
        report.judge(row)
    return rows, sampler, tag


def render(args: argparse.Namespace, target: Target, rows: list[report.Row], sampler: MemorySampler) -> str:
    stack_env = ", ".join(args.env) if args.env else "the services' defaults"
    totals = (
        f"{args.doctors:,} doctors, {args.doctors * SLOTS_PER_DOCTOR:,} future timeslots, "
        f"{args.patients:,} patients, {args.doctors * SLOTS_PER_DOCTOR // BOOKED_EVERY:,} appointments"
    )
    header = [
        "# Clinic benchmark results",
        "",
        f"- when: {datetime.now():%Y-%m-%d %H:%M}, commit {git_describe()}",
        f"- machine: {os.cpu_count()} cores, {memory_of_machine()}; gateway, services, PostgreSQL, RabbitMQ "
        f"and wrk all on it; {versions(target)}",
        f"- stack: {target.description}; settings: {stack_env}",
        f"- load: wrk, {args.connections} connections, {args.threads} thread(s), "
        f"{args.duration:g} s measured "
        f"after {args.warmup:g} s warm-up per phase; tokens of {args.users:,} patients",
        f"- data (1×): {totals}; phase 9 adds {args.scale - 1 if args.scale > 1 else 0}× that",
        "",
        "## Throughput and latency",
        "",
        report.table(rows),
        "",
        "Targets: reads (2–5) ≥ 40% and booking (6) ≥ 20% of the same run's ceiling (measured "
        "right before and after each phase; row 1's details), p99 < 100 ms, "
        "zero unexpected errors; 10× reads within 20% of 1×; propagation p99 < 250 ms. "
        "bench/README.md explains each column.",
        "",
        "## CPU per request (µs), by process",
        "",
        "What each part of the path spent per request in the measured seconds (PostgreSQL: the "
        "backends of this stack's databases; RabbitMQ: the whole broker). *Other work* is what the "
        "machine spent on anything else, in cores: when it is high, throughput and latency above "
        "are lower than the stack alone would give, and this table is the steadier measure.",
        "",
        report.cpu_table(rows),
        "",
        "## Details",
        "",
        report.notes(rows),
        "",
        "## Peak resident memory during the run",
        "",
        report.memory_table(sampler.peak_total, sampler.peak_process, sampler.process_count),
        "",
    ]
    return "\n".join(header)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wrk = ensure_wrk()
    env = dict(item.split("=", 1) for item in args.env)
    if args.attach:
        if env:
            raise SystemExit("bench: --env only applies to the bench's own stack, not to --attach")
        target: Target = AttachedStack(args.attach)
    else:
        say("starting a stack of its own (gateway and every service, fresh databases)")
        target = OwnStack(postgres_url=args.postgres_url, amqp_url=args.amqp_url, env=env, keep=args.keep)
    try:
        if isinstance(target, OwnStack):
            target.up()
            say(f"stack up at {target.base_url}; logs in {target.log_dir}")
        with tempfile.TemporaryDirectory(prefix="clinic-bench-load-") as requests_dir:
            rows, sampler, _ = run(args, target, wrk, Path(requests_dir))
        text = render(args, target, rows, sampler)
    finally:
        target.close()
    sys.stdout.write(f"\n{text}\n")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    say(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
