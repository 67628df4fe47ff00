"""booking-service command line: ``booking migrate``, ``booking dead-letters list|replay``."""

import sys
from pathlib import Path

from booking.config import Settings
from chassis.cli import consuming_service_cli

ALEMBIC_INI = Path(__file__).resolve().parents[2] / "alembic.ini"


main = consuming_service_cli("booking", Settings, ALEMBIC_INI, description=__doc__)

if __name__ == "__main__":
    sys.exit(main())
