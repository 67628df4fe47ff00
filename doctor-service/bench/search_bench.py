"""Benchmark of GET /api/doctors/'s query over 100,000 doctors (not part of the test suite).

Creates a scratch database, migrates it, inserts the doctors, then times the
endpoint's own read (``list_doctor_rows``: the first page and its total, on the
service's async read pool) for a few searches and filters, and prints p50/p99 and
the plans of the listing's reference page and count queries::

    .venv/bin/python doctor-service/bench/search_bench.py
    .venv/bin/python doctor-service/bench/search_bench.py --rows 20000 --runs 50 --keep

The server comes from ``--server-url`` (default: ``BENCH_DATABASE_URL``, else the local PostgreSQL).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from pathlib import Path

from sqlalchemy import Select, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from chassis.db import Database
from chassis.migrations import upgrade
from chassis.pagination import PageParams
from chassis.reads import FastReads
from chassis.settings import normalise_database_url
from doctor.queries import (
    DoctorFilters,
    list_doctor_rows,
    listed_doctors_count_query,
    listed_doctors_query,
)

ALEMBIC_INI = Path(__file__).resolve().parents[1] / "alembic.ini"
SCRATCH_DATABASE = "clinic_bench_doctor"
FIRST_PAGE = PageParams(page=1, page_size=20)

FIRST_NAMES = [
    "Ada", "Alan", "Grace", "John", "Mary", "Ahmed", "Li", "Sofia", "Olga", "Kwame",
    "Priya", "Diego", "Hana", "Noah", "Emma", "Lucas", "Aisha", "Ivan", "Mei", "Omar",
]  # fmt: skip
LAST_NAMES = [
    "Smith", "Lovelace", "Turing", "Hopper", "Nguyen", "Garcia", "Okafor", "Kowalski", "Tanaka",
    "Haddad", "Petrov", "Silva", "Müller", "Rossi", "Cohen", "Khan", "Larsen", "Dubois", "Novak",
    "Moreau", "Watson", "Strange", "Grey", "Bailey", "Ross", "Cuddy", "House", "Wilson", "Foreman",
]  # fmt: skip
SPECIALTIES = [
    "Cardiology", "Pediatric Cardiology", "Dermatology", "Neurology", "Neurosurgery", "Oncology",
    "Radiology", "Psychiatry", "Orthopedics", "Ophthalmology", "Endocrinology", "Gastroenterology",
    "Nephrology", "Urology", "Rheumatology", "Pulmonology", "General Surgery", "Family Medicine",
    "Internal Medicine", "Emergency Medicine", "Anesthesiology", "Pathology", "Geriatrics",
    "Obstetrics and Gynecology", "Otolaryngology", "Allergy and Immunology", "Hematology",
    "Infectious Disease", "Sports Medicine", "Plastic Surgery",
]  # fmt: skip

CASES = [
    ("search=cardio (specialty, ~7%)", DoctorFilters(search="cardio")),
    ("search=lovelace (name, ~3%)", DoctorFilters(search="lovelace")),
    ("search=zzz (no match)", DoctorFilters(search="zzzq")),
    ("search=ology (specialty, ~50%)", DoctorFilters(search="ology")),
    ("specialty=cardiology", DoctorFilters(specialty="cardiology")),
    ("no filter", DoctorFilters()),
]


def create_scratch_database(server_url: str) -> str:
    url = make_url(normalise_database_url(server_url))
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{SCRATCH_DATABASE}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{SCRATCH_DATABASE}"'))
    admin.dispose()
    return url.set(database=SCRATCH_DATABASE).render_as_string(hide_password=False)


def drop_scratch_database(server_url: str) -> None:
    url = make_url(normalise_database_url(server_url))
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{SCRATCH_DATABASE}" WITH (FORCE)'))
    admin.dispose()


def insert_doctors(db: Database, rows: int) -> None:
    """``rows`` doctors with mixed names and specialties; one in twenty hidden."""
    with db.transaction() as session:
        session.execute(
            text(
                """
                INSERT INTO doctors (id, full_name, specialty, bio, years_of_experience,
                                     is_active, user_revision, revision)
                SELECT n, f.names[1 + abs(hashint4(n)) % cardinality(f.names)]
                              || ' ' || l.names[1 + abs(hashint4(n + 7)) % cardinality(l.names)] || ' ' || n,
                       s.names[1 + abs(hashint4(n + 13)) % cardinality(s.names)],
                       'Doctor number ' || n || '.',
                       n % 41,
                       n % 20 <> 0,
                       1,
                       1
                FROM generate_series(1, :rows) AS n,
                     (SELECT CAST(:first AS text[]) AS names) AS f,
                     (SELECT CAST(:last AS text[]) AS names) AS l,
                     (SELECT CAST(:specialties AS text[]) AS names) AS s
                """
            ),
            {"first": FIRST_NAMES, "last": LAST_NAMES, "specialties": SPECIALTIES, "rows": rows},
        )
    with db.engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE doctors"))


async def time_case(db: Database, filters: DoctorFilters, runs: int) -> tuple[float, float, int]:
    """p50 and p99 in milliseconds of the endpoint's read (first page and total), and the total."""
    reads = FastReads(db.url, size=1, dialect=db.engine.dialect)
    await reads.open()
    timings = []
    count = 0
    try:
        for _ in range(runs):
            started = time.perf_counter()
            count, _page = await list_doctor_rows(reads, filters, FIRST_PAGE)
            timings.append((time.perf_counter() - started) * 1000)
    finally:
        await reads.close()
    quantiles = statistics.quantiles(timings, n=100, method="inclusive")
    return quantiles[49], quantiles[98], count


def plan(db: Database, query: Select) -> str:
    compiled = query.compile(dialect=db.engine.dialect)
    with db.engine.connect() as conn:
        rows = conn.exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {compiled}", compiled.params)
        return "\n".join("    " + row[0] for row in rows)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--server-url",
        default=os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--keep", action="store_true", help=f"keep the {SCRATCH_DATABASE} database")
    args = parser.parse_args()

    url = create_scratch_database(args.server_url)
    db = Database(url, pool_size=1, max_overflow=0)
    try:
        upgrade(ALEMBIC_INI, url)
        started = time.perf_counter()
        insert_doctors(db, args.rows)
        print(f"inserted {args.rows:,} doctors in {time.perf_counter() - started:.1f}s")  # noqa: T201
        for label, filters in CASES:
            p50, p99, count = asyncio.run(time_case(db, filters, args.runs))
            print(f"\n{label}: {count:,} matches; p50 {p50:.2f} ms, p99 {p99:.2f} ms")  # noqa: T201
            print("  page query:")  # noqa: T201
            print(plan(db, listed_doctors_query(filters).limit(20)))  # noqa: T201
            print("  count query:")  # noqa: T201
            print(plan(db, listed_doctors_count_query(filters)))  # noqa: T201
    finally:
        db.dispose()
        if not args.keep:
            drop_scratch_database(args.server_url)


if __name__ == "__main__":
    main()
