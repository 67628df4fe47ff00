"""booking-service test fixtures on the chassis test kit (``chassis.testkit``): the migrated database."""

from pathlib import Path

import pytest

ALEMBIC_INI = Path(__file__).resolve().parents[1] / "alembic.ini"


@pytest.fixture(scope="session")
def database_url(make_migrated_database) -> str:
    return make_migrated_database(ALEMBIC_INI, "booking")
