"""Pytest fixtures that give each test run its own databases and RabbitMQ vhost on real servers.

Servers come from ``TEST_DATABASE_URL`` / ``TEST_AMQP_URL`` when set (a server URL;
its database or vhost part is ignored), else from testcontainers when a Docker
engine answers. With neither, the tests that need them are skipped on a developer's
machine and **fail** under ``CI=true``: a missing server must never pass silently.

Loaded automatically as a pytest plugin wherever ``clinic-chassis`` is installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, suppress
from urllib.parse import quote, urlsplit, urlunsplit

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from chassis.settings import normalise_database_url


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _unavailable(what: str) -> None:
    message = f"no {what}: set TEST_{what.split()[0].upper()}_URL or run a Docker engine for testcontainers"
    if _in_ci():
        pytest.fail(f"{message} (CI=true: a missing server is a failure, not a skip)", pytrace=False)
    pytest.skip(message)


def _docker_available() -> bool:
    try:
        import docker  # type: ignore[import-untyped]

        docker.from_env().ping()
        return True
    except Exception:
        return False


def current_run_id(config: pytest.Config) -> str:
    """One id per test run (and per xdist worker), used to name its databases and vhost."""
    base = os.environ.get("CLINIC_TEST_RUN_ID") or getattr(config, "_clinic_run_id", None)
    if base is None:
        base = uuid.uuid4().hex[:10]
        config._clinic_run_id = base  # type: ignore[attr-defined]
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    return f"{base}{worker}"


@pytest.fixture(scope="session")
def run_id(request: pytest.FixtureRequest) -> str:
    return current_run_id(request.config)


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """A URL of a PostgreSQL server where the tests may create databases."""
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        yield normalise_database_url(url)
        return
    if not _docker_available():
        _unavailable("database server")
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
            self.server_url.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=NullPool
        )

    def __call__(self, name: str) -> str:
        database = f"clinic_test_{self.run_id}_{name}".lower()
        with self._admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{database}"'))
        self.created.append(database)
        return self.server_url.set(database=database).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        with self._admin.connect() as conn:
            for database in self.created:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        self._admin.dispose()


@pytest.fixture(scope="session")
def make_database(postgres_server_url: str, run_id: str) -> Iterator[Callable[[str], str]]:
    """``make_database("identity")`` → the URL of a fresh database of this test run."""
    factory = DatabaseFactory(postgres_server_url, run_id)
    yield factory
    if not os.environ.get("CLINIC_KEEP_TEST_DATABASES"):
        factory.drop_all()


class RabbitVhosts:
    """Creates and deletes vhosts with ``rabbitmqctl`` on the machine's RabbitMQ node."""

    def __init__(self, server_url: str) -> None:
        self.server_url = server_url
        self.ctl = os.environ.get("RABBITMQCTL", "rabbitmqctl")
        self.created: list[str] = []

    def _ctl(self, *args: str) -> None:
        if shutil.which(self.ctl) is None:
            raise RuntimeError(f"{self.ctl} not found; set RABBITMQCTL to create test vhosts")
        subprocess.run([self.ctl, "-q", *args], check=True, capture_output=True, timeout=60)

    def __call__(self, vhost: str) -> str:
        parts = urlsplit(self.server_url)
        user = parts.username or "guest"
        with suppress(subprocess.CalledProcessError):
            self._ctl("delete_vhost", vhost)
        self._ctl("add_vhost", vhost)
        self._ctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
        self.created.append(vhost)
        return urlunsplit((parts.scheme, parts.netloc, "/" + quote(vhost, safe=""), parts.query, ""))

    def delete_all(self) -> None:
        for vhost in self.created:
            with suppress(Exception):
                self._ctl("delete_vhost", vhost)


@pytest.fixture(scope="session")
def amqp_url(run_id: str) -> Iterator[str]:
    """An AMQP URL of a vhost that belongs to this test run alone."""
    server = os.environ.get("TEST_AMQP_URL")
    with ExitStack() as stack:
        if server:
            vhosts = RabbitVhosts(server)
            url = vhosts(f"clinic_test_{run_id}")
            if not os.environ.get("CLINIC_KEEP_TEST_DATABASES"):
                stack.callback(vhosts.delete_all)
            yield url
            return
        if not _docker_available():
            _unavailable("amqp server")
        from testcontainers.community.rabbitmq import RabbitMqContainer

        rabbit = stack.enter_context(RabbitMqContainer("rabbitmq:3.13-alpine"))
        params = rabbit.get_connection_params()
        yield f"amqp://{rabbit.username}:{rabbit.password}@{params.host}:{params.port}/%2F"
