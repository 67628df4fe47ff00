"""The database helpers: dead pooled connections replaced quietly, autocommit reads, ``run``."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import timedelta

import psycopg
from psycopg import sql
from sqlalchemy import DateTime, bindparam, cast, select, text

from chassis.db import Database
from chassis.observability import request_id_var
from chassis.pagination import PageParams, known_total
from chassis.reads import FastReads


def backend_pid(db: Database) -> int:
    with db.reading() as connection:
        return connection.execute(text("SELECT pg_backend_pid()")).scalar_one()


def test_a_pooled_connection_the_server_closed_is_replaced_without_an_error(new_database):
    url = new_database()
    db = Database(url, pool_size=1, max_overflow=0)
    try:
        pid = backend_pid(db)
        admin_url = url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            while admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone():
                time.sleep(0.01)
        assert backend_pid(db) != pid
    finally:
        db.dispose()


def test_reads_run_in_autocommit_and_writes_in_a_transaction(db):
    with db.reading() as connection:
        assert connection.execute(text("SELECT now() = statement_timestamp()")).scalar_one() is True
    with db.transaction() as session:
        session.execute(text("SELECT pg_sleep(0.01)"))
        assert session.execute(text("SELECT now() <> statement_timestamp()")).scalar_one() is True


def test_run_executes_in_a_database_thread_with_the_callers_context(db):
    def work() -> tuple[str, str | None, int]:
        return threading.current_thread().name, request_id_var.get(), backend_pid(db)

    async def call() -> tuple[str, str | None, int]:
        request_id_var.set("req-42")
        return await db.run(work)

    thread, request_id, pid = asyncio.run(call())
    assert thread.startswith("db")
    assert request_id == "req-42"
    assert pid > 0


def test_the_total_is_counted_only_when_the_page_cannot_tell_it():
    first = PageParams(page=1, page_size=20)
    third = PageParams(page=3, page_size=20)
    assert known_total(first, 0) == 0
    assert known_total(first, 7) == 7
    assert known_total(third, 5) == 45
    assert known_total(first, 20) is None  # a full page: there may be more
    assert known_total(third, 0) is None  # past the end: how far?


def test_sessions_run_in_utc_whatever_zone_the_database_is_set_to(new_database):
    # A server or database set to a zone with DST: what the services read is still UTC (events,
    # webhooks and FHIR resources say Z), and a day off a time is 24 hours (an Idempotency-Key's
    # window across spring-forward), on the sessions' pool and on the fast reads alike.
    url = new_database()
    libpq = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(libpq, autocommit=True) as admin:
        name = admin.execute("SELECT current_database()").fetchone()[0]
        admin.execute(
            sql.SQL("ALTER DATABASE {} SET timezone TO 'America/New_York'").format(sql.Identifier(name))
        )
        with psycopg.connect(libpq) as plain:  # the setting bites a connection of its own
            assert plain.execute("SHOW timezone").fetchone()[0] == "America/New_York"
    spring_forward = {"t": "2030-03-10T20:00:00Z"}
    both = select(
        cast(bindparam("t"), DateTime(timezone=True)).label("at"),
        (cast(bindparam("t"), DateTime(timezone=True)) - text("interval '1 day'")).label("day_before"),
    )
    db = Database(url, pool_size=1, max_overflow=0)
    try:
        with db.reading() as connection:
            at, day_before = connection.execute(both, spring_forward).one()

        async def fast_read() -> dict:
            reads = FastReads(db.url, size=1, dialect=db.engine.dialect)
            await reads.open()
            try:
                return await reads.first(both, spring_forward)
            finally:
                await reads.close()

        fast = asyncio.run(fast_read())
    finally:
        db.dispose()
    for read, before in ((at, day_before), (fast["at"], fast["day_before"])):
        assert read.utcoffset() == timedelta(0) and read.isoformat() == "2030-03-10T20:00:00+00:00"
        assert read - before == timedelta(hours=24)
