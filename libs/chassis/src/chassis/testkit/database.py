"""Databases of a test run: a fresh one per name (``make_database``), migrated on request.

    @pytest.fixture(scope="session")
    def database_url(make_migrated_database):
        return make_migrated_database(ALEMBIC_INI, "doctor")

``db`` is a ``chassis.db.Database`` over the service's ``database_url`` fixture;
``lock_waiters(db)`` counts its sessions waiting for a lock (a race test's "it is blocked now").
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from chassis.db import Database
from chassis.migrations import upgrade
from chassis.settings import normalise_database_url
from chassis.testkit.environment import docker_available, unavailable

# Databases dropped at once at the end of a session (its stacks and apps have let their
# connections go by then).
DROPS_AT_ONCE = 8


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """A URL of a PostgreSQL server where the tests may create databases."""
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        yield normalise_database_url(url)
        return
    if not docker_available():
        unavailable("database server")
    from testcontainers.community.postgres import PostgresContainer

    with PostgresContainer("postgres:15-alpine", driver="psycopg") as pg:
        yield pg.get_connection_url()


class DatabaseFactory:
    """Creates uniquely named databases on the test server and drops them afterwards."""

    def __init__(self, server_url: str, run_id: str) -> None:
        self.server_url = make_url(server_url)
        self.run_id = run_id
        self.created: list[str] = []
        self._admin = create_engine(
            self.server_url.set(database="postgres"),
            isolation_level="AUTOCOMMIT",
            poolclass=NullPool,
            hide_parameters=True,
        )

    def __call__(self, name: str) -> str:
        database = f"clinic_test_{self.run_id}_{name}".lower()
        with self._admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{database}"'))
        self.created.append(database)
        return self.server_url.set(database=database).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        """Drop every database this factory created, several at once (each DROP DATABASE mostly
        waits for the server to flush and remove its files)."""

        def drop(database: str) -> None:
            with self._admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))

        with ThreadPoolExecutor(DROPS_AT_ONCE) as pool:
            list(pool.map(drop, self.created))
        self._admin.dispose()


@pytest.fixture(scope="session")
def make_database(postgres_server_url: str, run_id: str) -> Iterator[Callable[[str], str]]:
    """``make_database("identity")`` → the URL of a fresh database of this test run."""
    factory = DatabaseFactory(postgres_server_url, run_id)
    yield factory
    if not os.environ.get("CLINIC_KEEP_TEST_DATABASES"):
        factory.drop_all()


@pytest.fixture(scope="session")
def make_migrated_database(make_database: Callable[[str], str]) -> Callable[[str | Path, str], str]:
    """``make_migrated_database(alembic_ini, name)`` → the URL of a fresh database of this run at
    the latest migration of the project whose ``alembic.ini`` that is."""

    def make(alembic_ini: str | Path, name: str) -> str:
        url = make_database(name)
        upgrade(Path(alembic_ini), url)
        return url

    return make


@pytest.fixture(scope="session")
def db(database_url: str) -> Iterator[Database]:
    """A small ``Database`` over the suite's ``database_url`` (a fixture each service defines)."""
    database = Database(database_url, pool_size=2, max_overflow=2)
    yield database
    database.dispose()


def lock_waiters(db: Database) -> int:
    """How many sessions of ``db``'s database are waiting for a lock (a row's, an advisory one)."""
    with db.reading() as connection:
        return connection.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        ).scalar_one()
