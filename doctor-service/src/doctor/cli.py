"""doctor-service command line: ``doctor migrate``, ``doctor dead-letters list|replay``."""

import sys
from pathlib import Path

from chassis.cli import service_main
from doctor.config import Settings

ALEMBIC_INI = Path(__file__).resolve().parents[2] / "alembic.ini"


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the process exit status."""
    return service_main(
        "doctor",
        argv,
        description=__doc__,
        alembic_ini=ALEMBIC_INI,
        settings=Settings,
        consumed_event_types=_consumed_event_types,
    )


def _consumed_event_types() -> list[str]:
    from doctor.events import CONSUMED  # the app's handlers, imported only when migrating

    return list(CONSUMED)


if __name__ == "__main__":
    sys.exit(main())
