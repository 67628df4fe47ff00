"""scheduling-service test fixtures on the chassis test kit (``chassis.testkit``): the migrated
database of this run, apps that trust the run's ``minter``, ``callers`` by role.

Tests share one database; each test works with its own fresh user ids (``new_id``),
so tests never see each other's timeslots and need no cleanup.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from chassis.testkit import Callers, TokenMinter
from scheduling.config import Settings
from scheduling.main import create_app

ALEMBIC_INI = Path(__file__).resolve().parents[1] / "alembic.ini"


@pytest.fixture(scope="session")
def database_url(make_migrated_database) -> str:
    return make_migrated_database(ALEMBIC_INI, "scheduling")


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
def from_booking(callers: Callers) -> dict[str, str]:
    """The Authorization header of booking's calls to the internal endpoints (a service token)."""
    return callers.service("booking", "scheduling")


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
