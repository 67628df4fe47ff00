"""Fixtures of chassis' own tests: a fresh database per test, a broker helper, polling."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, Uuid, func, select

from chassis.db import Base, Database
from chassis.messaging import Envelope

# A test-only table where handlers leave their effects (one row per handler run).
test_metadata = MetaData()
effects = Table(
    "effects",
    test_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", Uuid, nullable=False),
    Column("note", String(100)),
)


def _record_effect(session: Any, envelope: Envelope) -> None:
    session.execute(effects.insert().values(event_id=envelope.event_id, note=envelope.data.get("note")))


@pytest.fixture
def record_effect() -> Callable[[Any, Envelope], None]:
    """A handler: one row in the test table ``effects`` per run."""
    return _record_effect


def unique(prefix: str = "t") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


@pytest.fixture
def event_type() -> str:
    """An event type no other test uses."""
    return f"{unique()}.thing.happened"


@pytest.fixture
def service() -> str:
    """A consuming service name (and so queue names) no other test uses."""
    return unique("svc")


@pytest.fixture
def new_database(make_database: Callable[[str], str]) -> Iterator[Callable[[], str]]:
    """``new_database()`` → the URL of a fresh database with the messaging and test tables."""
    databases: list[Database] = []

    def create() -> str:
        url = make_database(unique("m"))
        database = Database(url, pool_size=2, max_overflow=2)
        Base.metadata.create_all(database.engine)
        test_metadata.create_all(database.engine)
        databases.append(database)
        return url

    yield create
    for database in databases:
        database.dispose()


@pytest.fixture
def db(new_database: Callable[[], str]) -> Iterator[Database]:
    database = Database(new_database(), pool_size=5, max_overflow=5)
    yield database
    database.dispose()


@pytest.fixture
def count_effects(db: Database) -> Callable[[Envelope], int]:
    def count(envelope: Envelope, database: Database = db) -> int:
        with database.sessions() as session:
            return session.scalar(
                select(func.count()).select_from(effects).where(effects.c.event_id == envelope.event_id)
            )

    return count
