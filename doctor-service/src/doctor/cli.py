"""doctor-service command line: ``doctor migrate`` and ``doctor dead-letters list|replay``."""

import argparse
import sys
from pathlib import Path

from chassis.messaging import deadletters_cli
from chassis.migrations import upgrade
from doctor.config import Settings

ALEMBIC_INI = Path(__file__).resolve().parents[2] / "alembic.ini"


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["dead-letters"]:
        # chassis owns the dead-letter tooling and parses the rest of the line.
        sys.exit(deadletters_cli("doctor", argv[1:], amqp_url=Settings().amqp_url))
    parser = argparse.ArgumentParser(prog="doctor", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="apply the database migrations")
    commands.add_parser("dead-letters", help="list or replay the events that kept failing (list|replay)")
    args = parser.parse_args(argv)
    if args.command == "migrate":
        upgrade(ALEMBIC_INI, Settings().database_url)


if __name__ == "__main__":
    main()
