"""Alembic glue: every service keeps its own history in ``<service>/migrations``."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import Connection, MetaData, engine_from_config, func, pool, select

from chassis.settings import normalise_database_url, session_options

# The advisory lock (two-key form: its own key space) that one migration run of a database holds
# from before it reads the database's revision until it is done: a second run (a Kubernetes Job
# that briefly has two pods, a Job re-applied at once, two compose projects on one server) waits,
# then finds the work done, instead of both running the same steps at once.
MIGRATION_LOCK = (7300, 1)
# The second run asks again this often, between tries outside any transaction: a statement
# blocked in pg_advisory_lock would keep a snapshot open, which a CREATE INDEX CONCURRENTLY of
# the first run waits for (a deadlock).
LOCK_POLL_SECONDS = 1.0

log = logging.getLogger("chassis.migrations")


def alembic_config(ini_path: str | Path, database_url: str) -> Config:
    config = Config(str(ini_path))
    config.set_main_option("script_location", str(Path(ini_path).parent / "migrations"))
    config.set_main_option("sqlalchemy.url", normalise_database_url(database_url).replace("%", "%%"))
    return config


def upgrade(ini_path: str | Path, database_url: str, revision: str = "head") -> None:
    """Bring the database at ``database_url`` to ``revision``."""
    command.upgrade(alembic_config(ini_path, database_url), revision)


def run_env(metadata: MetaData, database_url: str) -> None:
    """The body of a service's ``migrations/env.py``.

    The URL given on the command line (``-x``-less ``sqlalchemy.url``) wins over the
    service settings, so tests can migrate their own databases.
    """
    config = context.config
    url = config.get_main_option("sqlalchemy.url") or database_url
    if context.is_offline_mode():
        context.configure(url=normalise_database_url(url), target_metadata=metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    section = config.get_section(config.config_ini_section) or {}
    section["sqlalchemy.url"] = normalise_database_url(url)
    engine = engine_from_config(
        section,
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
        hide_parameters=True,
        connect_args={"options": session_options(url)},  # in UTC, as the services' sessions
    )
    with engine.connect() as connection:
        _take_migration_lock(connection)
        context.configure(connection=connection, target_metadata=metadata, compare_type=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


def _take_migration_lock(connection: Connection) -> None:
    """Take ``MIGRATION_LOCK`` for this connection's session: it outlives the migrations' commits
    (and their autocommit blocks) and goes with the connection. While another run holds it, ask
    again every ``LOCK_POLL_SECONDS``, holding no transaction in between."""
    waiting = False
    while True:
        taken = connection.execute(select(func.pg_try_advisory_lock(*MIGRATION_LOCK))).scalar_one()
        connection.commit()
        if taken:
            return
        if not waiting:
            log.warning("another migration run of this database is in progress; waiting for it to end")
            waiting = True
        time.sleep(LOCK_POLL_SECONDS)
