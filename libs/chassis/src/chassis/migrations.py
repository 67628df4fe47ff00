"""Alembic glue: every service keeps its own history in ``<service>/migrations``."""

from __future__ import annotations

from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, engine_from_config, pool

from chassis.settings import normalise_database_url


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
    engine = engine_from_config(section, prefix="sqlalchemy.", poolclass=pool.NullPool, hide_parameters=True)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=metadata, compare_type=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()
