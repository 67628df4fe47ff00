"""``FastReads``: the hot reads on the event loop, and what they answer when the server fails."""

from __future__ import annotations

import asyncio
import enum
import time

import psycopg
import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient
from sqlalchemy import bindparam, column, literal_column, select, table, text

from chassis.app import create_service_app
from chassis.db import AppReads, Database
from chassis.reads import FastReads
from chassis.testkit import TokenMinter

NUMBERS = table("numbers", column("n"), column("label"))
BY_LABEL = (
    select(NUMBERS.c.n, NUMBERS.c.label).where(NUMBERS.c.label == bindparam("label")).order_by(NUMBERS.c.n)
)
# A statement with a value of its own (bound at build time) next to the caller's.
ABOVE = select(NUMBERS.c.n).where(NUMBERS.c.n > bindparam("floor", 2), NUMBERS.c.label == bindparam("label"))
BACKEND = select(literal_column("pg_backend_pid()").label("pid"))


class Label(enum.StrEnum):
    EVEN = "even"


@pytest.fixture
def numbers(db: Database) -> Database:
    with db.transaction() as session:
        session.execute(text("CREATE TABLE numbers (n integer, label text)"))
        session.execute(
            text(
                "INSERT INTO numbers SELECT n, CASE WHEN n % 2 = 0 THEN 'even' ELSE 'odd' END "
                "FROM generate_series(1, 9) AS n"
            )
        )
    return db


def run_with_reads(db: Database, work, **options):
    async def main():
        reads = FastReads(db.url, size=1, dialect=db.engine.dialect, **options)
        await reads.open()
        try:
            return await work(reads)
        finally:
            await reads.close()

    return asyncio.run(main())


def test_rows_come_back_as_dicts_with_the_statements_own_values_and_enum_values(numbers):
    async def work(reads: FastReads):
        rows = await reads.all(BY_LABEL, {"label": Label.EVEN})
        first = await reads.first(BY_LABEL, {"label": "odd"})
        above = await reads.all(ABOVE, {"label": "even"})
        overridden = await reads.all(ABOVE, {"label": "even", "floor": 6})
        none = await reads.first(BY_LABEL, {"label": "neither"})
        count = await reads.scalar(select(literal_column("count(*)")).select_from(NUMBERS), {})
        return rows, first, above, overridden, none, count

    rows, first, above, overridden, none, count = run_with_reads(numbers, work)
    assert rows == [
        {"n": 2, "label": "even"},
        {"n": 4, "label": "even"},
        {"n": 6, "label": "even"},
        {"n": 8, "label": "even"},
    ]
    assert first == {"n": 1, "label": "odd"}
    assert [row["n"] for row in above] == [4, 6, 8]
    assert [row["n"] for row in overridden] == [8]
    assert none is None
    assert count == 9


def test_each_read_is_its_own_snapshot_in_autocommit(numbers):
    async def work(reads: FastReads):
        return await reads.scalar(select(literal_column("now() = statement_timestamp()")), {})

    assert run_with_reads(numbers, work) is True


def test_a_connection_the_server_closed_is_replaced_without_an_error(numbers):
    admin_url = numbers.url.replace("postgresql+psycopg://", "postgresql://")

    async def work(reads: FastReads):
        pid = await reads.scalar(BACKEND, {})
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            while admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone():
                time.sleep(0.01)
        return pid, await reads.scalar(BACKEND, {})

    before, after = run_with_reads(numbers, work)
    assert after != before


def test_a_database_out_of_reach_is_a_503_without_internals():
    router = APIRouter()

    @router.get("/api/read/")
    async def read(reads: AppReads) -> dict:
        return {"value": await reads.scalar(BACKEND, {})}

    unreachable = Database(
        "postgresql+psycopg://postgres@127.0.0.1:1/nowhere?connect_timeout=1", read_pool_size=1
    )
    unreachable.fast_reads = lambda: FastReads(  # a short wait, so the test does not sit for 5 s
        unreachable.url, size=1, dialect=unreachable.engine.dialect, wait_seconds=0.5
    )
    app = create_service_app(
        name="test",
        title="test",
        description="test",
        routers=[router],
        status_of={},
        token_verifier=TokenMinter().verifier(),
        readiness={},
        database=unreachable,
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/api/read/")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json()["code"] == "database_unavailable"
    assert "127.0.0.1" not in response.text and "psycopg" not in response.text
