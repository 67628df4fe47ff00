"""The fast bulk seed: consistent rows written straight into each service's database.

Going through the public API would take longer than the whole benchmark (registration
alone hashes a password per user), so the seed writes, in one ``INSERT ... SELECT
generate_series`` per table, exactly what the services themselves would have ended up
with after the events had flowed:

- identity ``users``: doctors and patients, active, revision 1, all with one argon2
  hash computed once (password ``BENCH_PASSWORD``, so logging in works too);
- doctor ``doctors``: a profile per doctor (name, specialty, bio, years);
- scheduling ``doctors`` (its read model of every user) and ``timeslots``: per doctor
  ``SLOTS_PER_DOCTOR`` future 30-minute timeslots, ``SLOTS_PER_DAY`` a day from 09:00
  (clinic time zone) starting tomorrow; every ``BOOKED_EVERY``-th is ``booked`` under a
  reservation id that is a hash of its timeslot id;
- booking ``users`` (its read model) and ``appointments``: one per booked timeslot, with
  that same reservation id, its doctor, times, and a patient (``pending`` or ``confirmed``).

Ids are given explicitly above each table's current maximum and the identity sequences
are moved past them, so both sides agree on every id without reading anything back and
the stack keeps working normally afterwards (registrations, bookings, cancellations).
A batch can be added on top of another: the 10x phase seeds a second, larger batch.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import psycopg

SLOTS_PER_DOCTOR = 100
SLOTS_PER_DAY = 10
SLOT_MINUTES = 30
BOOKED_EVERY = 5  # every 5th timeslot is booked: 20 appointments per doctor
DOCTORS_PER_COMMIT = 50  # booking's appointments, 1,000 a transaction (seed_booking)
BENCH_PASSWORD = "Bench-Password-1"

FIRST_NAMES = [
    "Ada",
    "Alan",
    "Amira",
    "Ana",
    "Ben",
    "Carla",
    "Chen",
    "David",
    "Elena",
    "Emil",
    "Eva",
    "Farah",
    "Felix",
    "Grace",
    "Hana",
    "Hugo",
    "Ines",
    "Ivan",
    "Jana",
    "Jonas",
    "Karim",
    "Lara",
    "Leo",
    "Lina",
    "Luca",
    "Maja",
    "Marco",
    "Mila",
    "Nadia",
    "Noah",
    "Olga",
    "Omar",
    "Paula",
    "Pedro",
    "Rosa",
    "Sami",
    "Sara",
    "Tariq",
    "Vera",
    "Yusuf",
]
LAST_NAMES = [
    "Almeida",
    "Baker",
    "Becker",
    "Costa",
    "Dubois",
    "Eriksen",
    "Fischer",
    "Garcia",
    "Haddad",
    "Hansen",
    "Ivanova",
    "Jensen",
    "Kaplan",
    "Kowalski",
    "Larsen",
    "Lopez",
    "Meyer",
    "Moreau",
    "Mueller",
    "Nakamura",
    "Novak",
    "Nowak",
    "Okafor",
    "Olsen",
    "Petrov",
    "Popescu",
    "Quinn",
    "Rossi",
    "Santos",
    "Schmidt",
    "Silva",
    "Smith",
    "Sorensen",
    "Suzuki",
    "Tanaka",
    "Torres",
    "Varga",
    "Vogel",
    "Wagner",
    "Weber",
    "Wilson",
    "Wong",
    "Yamada",
    "Young",
    "Zhang",
    "Ziegler",
    "Horvat",
    "Kovac",
    "Lund",
    "Berg",
]
# Two of twenty specialties match ?search=cardio: a tenth of the doctors.
SPECIALTIES = (
    "Cardiology",
    "Dermatology",
    "Neurology",
    "Pediatrics",
    "Orthopedics",
    "Ophthalmology",
    "Gastroenterology",
    "Endocrinology",
    "Oncology",
    "Psychiatry",
    "Pulmonology",
    "Urology",
    "Rheumatology",
    "Nephrology",
    "General Practice",
    "Gynecology",
    "Otolaryngology",
    "Radiology",
    "Pediatric Cardiology",
    "Allergy and Immunology",
)

# Expressions of the generate_series index ``g`` shared by every database, so that a user's
# name is the same in identity, doctor and booking.
NAME_SQL = "(%(first)s::text[])[1 + g %% {f}] || ' ' || (%(last)s::text[])[1 + (g / {f}) %% {n}]".format(
    f=len(FIRST_NAMES), n=len(LAST_NAMES)
)
SLOT_START_SQL = (
    f"((%(day0)s::date + (s / {SLOTS_PER_DAY})) + time '09:00'"
    f" + (s %% {SLOTS_PER_DAY}) * interval '{SLOT_MINUTES} minutes')"
    " AT TIME ZONE %(tz)s"
)
RESERVATION_SQL = "md5('bench:' || %(tag)s || ':' || ({tid}))::uuid"


@dataclass(frozen=True)
class Batch:
    """One seeded population: ids are contiguous ranges above what the databases held."""

    tag: str
    doctors: int
    patients: int
    user_base: int
    timeslot_base: int
    day0: date
    tz: str

    # doctor i in 1..doctors, patient j in 1..patients, slot s in 0..SLOTS_PER_DOCTOR-1
    def doctor_id(self, i: int) -> int:
        return self.user_base + i

    def patient_id(self, j: int) -> int:
        return self.user_base + self.doctors + j

    def timeslot_id(self, i: int, s: int) -> int:
        return self.timeslot_base + (i - 1) * SLOTS_PER_DOCTOR + s + 1

    def slot_day(self, s: int) -> date:
        return self.day0 + timedelta(days=s // SLOTS_PER_DAY)

    def slot_start(self, s: int) -> datetime:
        local = datetime.combine(self.slot_day(s), time(9, 0), tzinfo=ZoneInfo(self.tz))
        return local + timedelta(minutes=SLOT_MINUTES * (s % SLOTS_PER_DAY))

    @staticmethod
    def is_booked(s: int) -> bool:
        return s % BOOKED_EVERY == 0

    @property
    def appointments(self) -> int:
        return self.doctors * (SLOTS_PER_DOCTOR // BOOKED_EVERY)

    @property
    def timeslots(self) -> int:
        return self.doctors * SLOTS_PER_DOCTOR

    def random_doctor(self, rng: random.Random) -> int:
        return self.doctor_id(rng.randint(1, self.doctors))

    def random_patient(self, rng: random.Random) -> int:
        return self.patient_id(rng.randint(1, self.patients))

    def random_day(self, rng: random.Random) -> date:
        return self.slot_day(rng.randrange(SLOTS_PER_DOCTOR))

    def params(self) -> dict[str, object]:
        return {
            "tag": self.tag,
            "doctors": self.doctors,
            "patients": self.patients,
            "ub": self.user_base,
            "tb": self.timeslot_base,
            "day0": self.day0,
            "tz": self.tz,
            "first": list(FIRST_NAMES),
            "last": list(LAST_NAMES),
            "specialties": list(SPECIALTIES),
        }


def password_hash() -> str:
    """One argon2id hash with identity's default cost, shared by every seeded user."""
    from argon2 import PasswordHasher

    return PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1).hash(BENCH_PASSWORD)


def _connect(url: str) -> psycopg.Connection:
    conn = psycopg.connect(url, autocommit=False)
    conn.execute("SET synchronous_commit = off")
    return conn


def allocate(urls: dict[str, str], *, tag: str, doctors: int, patients: int, tz: str) -> Batch:
    """A batch whose ids start above everything identity and scheduling hold now."""
    with psycopg.connect(urls["identity"]) as conn:
        user_base = conn.execute("SELECT coalesce(max(id), 0) FROM users").fetchone()[0]
    with psycopg.connect(urls["scheduling"]) as conn:
        timeslot_base = conn.execute("SELECT coalesce(max(id), 0) FROM timeslots").fetchone()[0]
    # Leave room for users registering meanwhile (the identity sequence is moved past the batch).
    return Batch(
        tag=tag,
        doctors=doctors,
        patients=patients,
        user_base=user_base + 1000,
        timeslot_base=timeslot_base + 10_000,
        day0=date.today() + timedelta(days=1),
        tz=tz,
    )


def seed_identity(url: str, batch: Batch, hashed: str) -> None:
    with _connect(url) as conn:
        conn.execute(
            f"""
            INSERT INTO users (id, email, password_hash, full_name, phone, role, is_active, revision)
            SELECT %(ub)s + g,
                   'bench-' || %(tag)s || '-' || g || '@bench.example.com',
                   %(hash)s,
                   {NAME_SQL},
                   NULL,
                   CASE WHEN g <= %(doctors)s THEN 'doctor' ELSE 'patient' END,
                   true,
                   1
            FROM generate_series(1, %(doctors)s + %(patients)s) AS g
            """,
            {**batch.params(), "hash": hashed},
        )
        conn.execute("SELECT setval(pg_get_serial_sequence('users', 'id'), greatest(max(id), 1)) FROM users")


def seed_doctor(url: str, batch: Batch) -> None:
    with _connect(url) as conn:
        conn.execute(
            f"""
            INSERT INTO doctors (id, full_name, specialty, bio, years_of_experience, is_active,
                                 user_revision, revision)
            SELECT %(ub)s + g,
                   {NAME_SQL},
                   (%(specialties)s::text[])[1 + g %% {len(SPECIALTIES)}],
                   'Sees patients of all ages; special interest in ' ||
                       lower((%(specialties)s::text[])[1 + g %% {len(SPECIALTIES)}]) || '.',
                   g %% 41,
                   true,
                   1,
                   1
            FROM generate_series(1, %(doctors)s) AS g
            """,
            batch.params(),
        )


def seed_scheduling(url: str, batch: Batch) -> None:
    tid = f"%(tb)s + (i - 1) * {SLOTS_PER_DOCTOR} + s + 1"
    with _connect(url) as conn:
        conn.execute(
            """
            INSERT INTO doctors (id, is_doctor, is_active, revision)
            SELECT %(ub)s + g, g <= %(doctors)s, true, 1
            FROM generate_series(1, %(doctors)s + %(patients)s) AS g
            """,
            batch.params(),
        )
        conn.execute(
            f"""
            INSERT INTO timeslots (id, doctor_id, start_time, end_time, state, reservation_id)
            SELECT {tid},
                   %(ub)s + i,
                   t.start_time,
                   t.start_time + interval '{SLOT_MINUTES} minutes',
                   CASE WHEN s %% {BOOKED_EVERY} = 0 THEN 'booked' ELSE 'available' END,
                   CASE WHEN s %% {BOOKED_EVERY} = 0 THEN {RESERVATION_SQL.format(tid=tid)} END
            FROM generate_series(1, %(doctors)s) AS i
            CROSS JOIN generate_series(0, {SLOTS_PER_DOCTOR - 1}) AS s
            CROSS JOIN LATERAL (SELECT {SLOT_START_SQL} AS start_time) AS t
            ORDER BY i, s
            """,
            batch.params(),
        )
        conn.execute(
            "SELECT setval(pg_get_serial_sequence('timeslots', 'id'), greatest(max(id), 1)) FROM timeslots"
        )


def seed_booking(url: str, batch: Batch) -> None:
    per_doctor = SLOTS_PER_DOCTOR // BOOKED_EVERY
    tid = f"%(tb)s + (i - 1) * {SLOTS_PER_DOCTOR} + s + 1"
    with _connect(url) as conn:
        conn.execute(
            f"""
            INSERT INTO users (id, full_name, role, is_active, revision)
            SELECT %(ub)s + g,
                   {NAME_SQL},
                   CASE WHEN g <= %(doctors)s THEN 'doctor' ELSE 'patient' END,
                   true,
                   1
            FROM generate_series(1, %(doctors)s + %(patients)s) AS g
            """,
            batch.params(),
        )
        conn.commit()
        appointments = f"""
            INSERT INTO appointments (reservation_id, timeslot_id, doctor_id, patient_id, start_time,
                                      end_time, status, reason, created_at, updated_at)
            SELECT {RESERVATION_SQL.format(tid=tid)},
                   {tid},
                   %(ub)s + i,
                   %(ub)s + %(doctors)s + 1 + (k %% %(patients)s),
                   t.start_time,
                   t.start_time + interval '{SLOT_MINUTES} minutes',
                   CASE WHEN k %% 3 = 0 THEN 'confirmed' ELSE 'pending' END,
                   'Follow-up visit',
                   t.created_at,
                   t.created_at
            FROM generate_series(%(first)s::int, %(last)s::int) AS i
            CROSS JOIN generate_series(0, {per_doctor - 1}) AS b
            CROSS JOIN LATERAL (SELECT b * {BOOKED_EVERY} AS s, (i - 1) * {per_doctor} + b AS k) AS x
            CROSS JOIN LATERAL (
                SELECT {SLOT_START_SQL} AS start_time,
                       now() - ((k * 7919) %% 43200) * interval '1 minute' AS created_at
            ) AS t
            ORDER BY i, b
            """
        # A transaction per DOCTORS_PER_COMMIT doctors: each appointment's reservation fence
        # (booking migration 0006's constraint trigger) takes an advisory lock until commit, and
        # one transaction for them all ran out of PostgreSQL's lock table ("out of shared memory").
        for first in range(1, batch.doctors + 1, DOCTORS_PER_COMMIT):
            last = min(first + DOCTORS_PER_COMMIT - 1, batch.doctors)
            conn.execute(appointments, batch.params() | {"first": first, "last": last})
            conn.commit()


VACUUM = {
    "identity": ["users"],
    "doctor": ["doctors"],
    "scheduling": ["doctors", "timeslots"],
    "booking": ["users", "appointments"],
}


def vacuum(url: str, tables: list[str]) -> None:
    """VACUUM ANALYZE: fresh statistics and visibility map, as autovacuum would leave them."""
    with psycopg.connect(url, autocommit=True) as conn:
        for table in tables:
            conn.execute(f"VACUUM (ANALYZE) {table}")


def seed(urls: dict[str, str], batch: Batch, say: Callable[[str], None]) -> None:
    """Write ``batch`` into all four databases (in parallel), then vacuum and analyze."""
    hashed = password_hash()
    jobs = {
        "identity": lambda: seed_identity(urls["identity"], batch, hashed),
        "doctor": lambda: seed_doctor(urls["doctor"], batch),
        "scheduling": lambda: seed_scheduling(urls["scheduling"], batch),
        "booking": lambda: seed_booking(urls["booking"], batch),
    }
    with ThreadPoolExecutor(len(jobs)) as pool:
        futures = {name: pool.submit(job) for name, job in jobs.items()}
        for future in futures.values():
            future.result()
    with ThreadPoolExecutor(len(VACUUM)) as pool:
        list(pool.map(lambda item: vacuum(urls[item[0]], item[1]), VACUUM.items()))
    say(
        f"seeded {batch.doctors:,} doctors, {batch.patients:,} patients, {batch.timeslots:,} timeslots, "
        f"{batch.appointments:,} appointments"
    )
