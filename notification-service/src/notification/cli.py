"""notification-service command line: ``notification provision|migrate|dead-letters``."""

import sys
from pathlib import Path

from chassis.cli import service_main
from notification.config import Settings

ALEMBIC_INI = Path(__file__).resolve().parents[2] / "alembic.ini"


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the process exit status."""
    return service_main(
        "notification",
        argv,
        description=__doc__,
        alembic_ini=ALEMBIC_INI,
        settings=Settings,
        consumed_event_types=_consumed_event_types,
    )


def _consumed_event_types() -> list[str]:
    from notification.events import CONSUMED_EVENT_TYPES  # imported only when migrating

    return CONSUMED_EVENT_TYPES


if __name__ == "__main__":
    sys.exit(main())
