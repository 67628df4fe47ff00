"""identity-service command line: ``identity migrate``."""

import argparse
from pathlib import Path

from chassis.migrations import upgrade
from identity.config import Settings

ALEMBIC_INI = Path(__file__).resolve().parents[2] / "alembic.ini"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="identity", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="apply the database migrations")
    args = parser.parse_args(argv)
    if args.command == "migrate":
        upgrade(ALEMBIC_INI, Settings().database_url)


if __name__ == "__main__":
    main()
