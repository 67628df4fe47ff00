"""doctor-service test fixtures: a fresh, migrated database of this test run."""

from pathlib import Path

import pytest

from chassis.migrations import upgrade

ALEMBIC_INI = Path(__file__).resolve().parents[1] / "alembic.ini"


@pytest.fixture(scope="session")
def database_url(make_database) -> str:
    url = make_database("doctor")
    upgrade(ALEMBIC_INI, url)
    return url
