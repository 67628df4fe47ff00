"""notification-service command line: ``notification provision|migrate|dead-letters``."""

import sys
from pathlib import Path

from chassis.cli import consuming_service_cli
from notification.config import Settings

ALEMBIC_INI = Path(__file__).resolve().parents[2] / "alembic.ini"


main = consuming_service_cli("notification", Settings, ALEMBIC_INI, description=__doc__)

if __name__ == "__main__":
    sys.exit(main())
