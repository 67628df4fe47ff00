"""scheduling-service test fixtures: a fresh, migrated database of this run, apps and tokens.

Tests share one database; each test works with its own fresh user ids (``new_id``),
so tests never see each other's timeslots and need no cleanup.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from chassis.db import Database
from chassis.migrations import upgrade
from chassis.testing import wait_until
from chassis.testkit import TokenMinter
from scheduling.config import Settings
from scheduling.main import create_app

ALEMBIC_INI = Path(__file__).resolve().parents[1] / "alembic.ini"
CONTRACTS_DIR = Path(__file__).resolve().parents[2] / "contracts"

_ids = itertools.count(random.randrange(1_000_000, 2_000_000_000))


@pytest.fixture(scope="session")
def make_migrated_database(make_database) -> Callable[[str], str]:
    """``make_migrated_database(name)`` → the URL of a fresh database of this run at the latest migration."""

    def make(name: str) -> str:
        url = make_database(name)
        upgrade(ALEMBIC_INI, url)
        return url

    return make


@pytest.fixture(scope="session")
def database_url(make_migrated_database) -> str:
    return make_migrated_database("scheduling")


@pytest.fixture(scope="session")
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url, pool_size=2, max_overflow=2)  # small: `make run` may be up
    yield database
    database.dispose()


@pytest.fixture(scope="session")
def contracts_dir() -> Path:
    """The repository's event contracts (JSON Schemas)."""
    return CONTRACTS_DIR


@pytest.fixture(scope="session")
def minter() -> TokenMinter:
    return TokenMinter()


@pytest.fixture
def new_id() -> Callable[[], int]:
    """A user id no other test uses."""
    return lambda: next(_ids)


@pytest.fixture(scope="session")
def make_client(database_url: str, minter: TokenMinter) -> Callable[..., Any]:
    """``with make_client(CLINIC_TIMEZONE=...) as client:`` an app on the test database.

    Messaging and the hold sweeper are off unless a test turns them on.
    """

    @contextmanager
    def make(**overrides: Any) -> Iterator[TestClient]:
        values = {
            "database_url": database_url,
            "amqp_url": "amqp://guest:guest@127.0.0.1:1/%2F",
            "messaging_enabled": False,
            "hold_sweeper_enabled": False,
            "log_format": "text",
        }
        values.update(overrides)
        app = create_app(Settings(**values))
        minter.trust(app, "scheduling")
        with TestClient(app) as client:
            yield client
        app.state.db.dispose()

    return make


@pytest.fixture(scope="session")
def client(make_client) -> Iterator[TestClient]:
    with make_client() as client:
        yield client


@pytest.fixture(scope="session")
def from_booking(minter: TokenMinter) -> dict[str, str]:
    """The Authorization header of booking's calls to the internal endpoints (a service token)."""
    return {"Authorization": minter.service_credentials("booking").authorization("scheduling")}


@pytest.fixture(scope="session")
def auth(minter: TokenMinter) -> Callable[[int, str], dict[str, str]]:
    """``auth(user_id, role)`` → the Authorization header of a valid access token."""
    return lambda user_id, role: minter.headers(user_id=user_id, role=role)


def at(days: int, hour: int = 9, minute: int = 0) -> datetime:
    """A UTC instant ``days`` days from today at ``hour:minute``."""
    day = datetime.now(UTC).date() + timedelta(days=days)
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


@pytest.fixture(scope="session")
def when() -> Callable[..., datetime]:
    """``when(days, hour=9, minute=0)``: a future UTC instant."""
    return at


@pytest.fixture(scope="session")
def rfc3339() -> Callable[[datetime], str]:
    return iso


@pytest.fixture(scope="session")
def eventually() -> Callable[..., Any]:
    return wait_until


def next_dst_changes(tz_name: str) -> tuple[date, date]:
    """The next day clocks spring forward and the next day they fall back in ``tz_name``."""
    tz = ZoneInfo(tz_name)
    day = datetime.now(UTC).date() + timedelta(days=2)
    spring = fall = None
    while spring is None or fall is None:
        before = datetime.combine(day, time(0), tz).utcoffset()
        after = datetime.combine(day + timedelta(days=1), time(0), tz).utcoffset()
        if after > before and spring is None:
            spring = day
        elif after < before and fall is None:
            fall = day
        day += timedelta(days=1)
    return spring, fall


@pytest.fixture(scope="session")
def new_york_dst() -> tuple[date, date]:
    """(next spring-forward day, next fall-back day) in America/New_York."""
    return next_dst_changes("America/New_York")
