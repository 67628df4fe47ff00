"""Init container of each Deployment: wait until the service's database has this image's migrations.

    python wait_for_migrations.py <service> [--interval SECONDS]

The migration Job (``<service> migrate``) applies the migrations; this only reads the database's
Alembic revision and exits 0 once it is the image's head (or newer, during a rolling upgrade that
an older pod restarts in). Without it a pod would serve requests against a database without
its tables until the Job finishes. Connection settings come from the environment, read by the
service's own Settings; alembic.ini is found where ``<service> migrate`` finds it.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import create_engine

from chassis.migrations import alembic_config
from chassis.settings import normalise_database_url

# The services with a database of their own (each Deployment's init container names its own).
SERVICES = ("identity", "doctor", "scheduling", "booking", "notification")


def say(message: str) -> None:
    sys.stderr.write(f"wait-for-migrations: {message}\n")
    sys.stderr.flush()


def is_migrated(script: ScriptDirectory, current: set[str]) -> bool:
    """Whether a database at revisions ``current`` has every migration of ``script``."""
    heads = set(script.get_heads())
    if current == heads:
        return True
    for revision in current:
        try:
            script.get_revision(revision)
        except CommandError:
            return True  # a revision this image does not know: a newer image migrated already
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("service", choices=SERVICES)
    parser.add_argument("--interval", type=float, default=3.0, help="seconds between checks")
    args = parser.parse_args(argv)

    cli = importlib.import_module(f"{args.service}.cli")
    settings = importlib.import_module(f"{args.service}.config").Settings()
    script = ScriptDirectory.from_config(alembic_config(cli.ALEMBIC_INI, settings.database_url))
    engine = create_engine(
        normalise_database_url(settings.database_url), pool_pre_ping=True, hide_parameters=True
    )
    say(f"waiting until the {args.service} database is at {', '.join(sorted(script.get_heads()))}")
    while True:
        try:
            with engine.connect() as connection:
                current = set(MigrationContext.configure(connection).get_current_heads())
        except Exception as exc:  # not reachable yet: keep waiting, the pod's restart policy is ours
            say(f"database not reachable: {type(exc).__name__}: {exc}".splitlines()[0])
        else:
            if is_migrated(script, current):
                say(f"migrated (at {', '.join(sorted(current))})")
                engine.dispose()
                return 0
            say(f"at {', '.join(sorted(current)) or 'no revision'}; waiting for the migration job")
        time.sleep(args.interval)


if __name__ == "__main__":
    sys.exit(main())
