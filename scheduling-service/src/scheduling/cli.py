"""scheduling-service command line: ``scheduling migrate``, ``scheduling dead-letters list|replay``."""

import sys
from pathlib import Path

from chassis.cli import consuming_service_cli
from scheduling.config import Settings

ALEMBIC_INI = Path(__file__).resolve().parents[2] / "alembic.ini"


main = consuming_service_cli("scheduling", Settings, ALEMBIC_INI, description=__doc__)

if __name__ == "__main__":
    sys.exit(main())
