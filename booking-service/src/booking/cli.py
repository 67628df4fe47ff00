"""booking-service command line: ``booking migrate``."""

import argparse
from pathlib import Path

from booking.config import Settings
from chassis.migrations import upgrade

ALEMBIC_INI = Path(__file__).resolve().parents[2] / "alembic.ini"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="booking", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="apply the database migrations")
    args = parser.parse_args(argv)
    if args.command == "migrate":
        upgrade(ALEMBIC_INI, Settings().database_url)


if __name__ == "__main__":
    main()
