"""Benchmark the timeslot listings with a million timeslots (not part of the test suite).

Creates a scratch database, migrates it, loads ``--rows`` timeslots spread over
``--doctors`` doctors with ``generate_series`` (half in the past; of the future ones
about 70% available, 20% booked, 10% held), then times the service's own use cases
(``list_free_timeslots`` for patients, ``list_own_timeslots`` for doctors: count +
one page, as the API runs them) and prints p50/p99 and the EXPLAIN ANALYZE of both
page queries. The scratch database is dropped at the end unless ``--keep``.

    cd scheduling-service
    ../.venv/bin/python bench/free_listing_bench.py [--server postgresql://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import Select, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from chassis.db import Database
from chassis.migrations import upgrade
from chassis.pagination import PageParams
from chassis.settings import normalise_database_url
from chassis.timezones import day_bounds, utcnow
from scheduling import queries

ALEMBIC_INI = Path(__file__).resolve().parents[1] / "alembic.ini"
SLOT = timedelta(minutes=30)

LOAD_SQL = """
INSERT INTO doctors (id, is_doctor, is_active, revision)
SELECT d, true, true, 1 FROM generate_series(1, :doctors) AS d;

INSERT INTO timeslots (doctor_id, start_time, end_time, state, reservation_id, held_until)
SELECT d,
       s.start_time,
       s.start_time + interval '30 minutes',
       s.state,
       CASE WHEN s.state = 'available' THEN NULL ELSE gen_random_uuid() END,
       CASE WHEN s.state = 'held' THEN now() + interval '30 seconds' END
FROM generate_series(1, :doctors) AS d,
     LATERAL (
       SELECT :base + k * interval '30 minutes' AS start_time,
              CASE WHEN k < :per_doctor / 2 THEN
                     CASE WHEN random() < 0.7 THEN 'booked' ELSE 'available' END
                   WHEN random() < 0.7 THEN 'available'
                   WHEN random() < 0.67 THEN 'booked'
                   ELSE 'held' END AS state
       FROM generate_series(0, :per_doctor - 1) AS k
     ) AS s;
ANALYZE doctors;
ANALYZE timeslots;
"""


def say(line: str = "") -> None:
    """Report to the terminal (this is a command-line tool)."""
    sys.stdout.write(line + "\n")


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def timed(label: str, runs: int, call: Callable[[], object]) -> None:
    call()  # warm the connection pool and caches
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    say(
        f"{label:<48} n={runs}  p50={statistics.median(samples):7.2f} ms  "
        f"p99={percentile(samples, 0.99):7.2f} ms  max={max(samples):7.2f} ms"
    )


def explain(db: Database, label: str, query: Select) -> None:
    compiled = query.limit(20).compile(dialect=db.engine.dialect)
    with db.engine.connect() as connection:
        plan = connection.exec_driver_sql(
            "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + compiled.string, compiled.params
        ).scalars()
        say(f"\n--- EXPLAIN ANALYZE: {label}\n" + "\n".join(plan))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--server",
        default=os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="a PostgreSQL server where a scratch database may be created",
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--doctors", type=int, default=1_000)
    parser.add_argument("--runs", type=int, default=500, help="timed calls per listing")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args()

    server = make_url(normalise_database_url(args.server))
    name = f"clinic_bench_scheduling_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = server.set(database=name).render_as_string(hide_password=False)
    db = Database(url, pool_size=2, max_overflow=0)
    stack = ExitStack()
    try:
        upgrade(ALEMBIC_INI, url)
        per_doctor = args.rows // args.doctors
        # Half of each doctor's timeslots lie in the past, half in the future.
        base = utcnow().replace(minute=0, second=0, microsecond=0) - SLOT * (per_doctor // 2)
        started = time.perf_counter()
        with db.engine.begin() as connection:
            for statement in filter(str.strip, LOAD_SQL.split(";")):
                connection.execute(
                    text(statement), {"doctors": args.doctors, "per_doctor": per_doctor, "base": base}
                )
        took = time.perf_counter() - started
        say(f"loaded {per_doctor * args.doctors:,} timeslots of {args.doctors:,} doctors in {took:.1f} s\n")

        tz = ZoneInfo("UTC")
        page = PageParams(page=1, page_size=20)
        doctors = list(range(1, args.doctors + 1))
        tomorrow = (utcnow() + timedelta(days=1)).date()

        # The free listing is an async read on the event loop (chassis.reads): one loop for all runs.
        runner = asyncio.Runner()
        reads = db.fast_reads()
        runner.run(reads.open())
        stack.callback(runner.close)
        stack.callback(lambda: runner.run(reads.close()))

        def free(**filters: object) -> Callable[[], object]:
            return lambda: runner.run(
                queries.list_free_timeslots(reads, random.choice(doctors), page, tz=tz, **filters)
            )

        def own(**filters: object) -> Callable[[], object]:
            return lambda: queries.list_own_timeslots(db, random.choice(doctors), page, tz=tz, **filters)

        timed("free listing (patient), first page", args.runs, free())
        timed("free listing (patient), ?date=tomorrow", args.runs, free(day=tomorrow))
        timed("own listing (doctor), first page", args.runs, own())
        timed("own listing (doctor), ?is_available=true", args.runs, own(is_available=True))

        doctor = random.choice(doctors)
        listed = {"doctor_id": doctor, "offset": 0, "limit": 20}
        page_of = queries.free_page(day=False, since=False, until=False)
        explain(db, "free listing page", page_of.params(now=utcnow(), **listed))
        start, end = day_bounds(tomorrow, tz)
        explain(
            db,
            "free listing page, ?date=",
            queries.free_page(day=True, since=False, until=False).params(
                now=start, day_start=start, day_end=end, **listed
            ),
        )
        explain(db, "own listing page", queries.own_timeslots_query(doctor, tz=tz))
    finally:
        stack.close()
        db.dispose()
        if not args.keep:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
