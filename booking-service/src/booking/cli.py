"""booking-service command line: ``booking migrate``, ``booking dead-letters list|replay``."""

import argparse
import sys
from pathlib import Path

from booking.config import Settings
from chassis.messaging import deadletters_cli
from chassis.migrations import upgrade

ALEMBIC_INI = Path(__file__).resolve().parents[2] / "alembic.ini"


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the process exit status."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["dead-letters"]:
        # The dead-letter commands parse their own options (list, replay --event-id ...).
        return deadletters_cli("booking", argv[1:], amqp_url=Settings().amqp_url)
    parser = argparse.ArgumentParser(prog="booking", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="apply the database migrations")
    commands.add_parser("dead-letters", help="list or replay dead letters (dead-letters --help)")
    args = parser.parse_args(argv)
    if args.command == "migrate":
        upgrade(ALEMBIC_INI, Settings().database_url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
