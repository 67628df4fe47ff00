"""The Alembic helpers that services call from their initial migration."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import MetaData, create_engine, func, inspect, select, text
from sqlalchemy.pool import NullPool

from chassis import migrations
from chassis.messaging import OutboxEvent, ProcessedEvent, create_messaging_tables, drop_messaging_tables
from chassis.migrations import MIGRATION_LOCK, upgrade
from chassis.settings import normalise_database_url
from chassis.testkit import wait_until


def test_the_migration_helpers_create_exactly_the_tables_of_the_models(make_database):
    engine = create_engine(normalise_database_url(make_database("migration_ops")), poolclass=NullPool)
    models = MetaData()
    for table in (OutboxEvent.__table__, ProcessedEvent.__table__):
        table.to_metadata(models)
    with engine.begin() as connection:
        create_messaging_tables(Operations(MigrationContext.configure(connection)))
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, models) == []
        indexes = inspect(connection).get_indexes("outbox_events")
        assert [(i["name"], i["dialect_options"]["postgresql_where"]) for i in indexes] == [
            ("ix_outbox_events_unpublished", "(published_at IS NULL)")
        ]

        drop_messaging_tables(Operations(MigrationContext.configure(connection)))
        assert inspect(connection).get_table_names() == []
    engine.dispose()


def a_history(directory: Path) -> Path:
    """An Alembic history of one migration (a table) run through ``run_env``; its alembic.ini."""
    versions = directory / "migrations" / "versions"
    versions.mkdir(parents=True)
    (directory / "migrations" / "env.py").write_text(
        "from sqlalchemy import MetaData\nfrom chassis.migrations import run_env\n"
        "run_env(MetaData(), 'postgresql://unused/unused')\n"
    )
    (directory / "migrations" / "script.py.mako").write_text("")
    (versions / "0001_first.py").write_text(
        "import sqlalchemy as sa\nfrom alembic import op\n"
        "revision = '0001'\ndown_revision = None\n"
        "def upgrade():\n    op.create_table('first', sa.Column('id', sa.Integer, primary_key=True))\n"
    )
    ini = directory / "alembic.ini"
    ini.write_text("[alembic]\n")
    return ini


def test_a_second_migration_run_waits_for_the_first_and_finds_the_work_done(
    make_database, tmp_path, caplog, monkeypatch
):
    monkeypatch.setattr(migrations, "LOCK_POLL_SECONDS", 0.1)
    url = make_database("migration_lock")
    ini = a_history(tmp_path)
    engine = create_engine(normalise_database_url(url), poolclass=NullPool)
    # The holder's connection closes (and lets go of the lock) before the pool waits for its thread.
    with ThreadPoolExecutor(max_workers=1) as pool, engine.connect() as holder:
        holder.execute(select(func.pg_advisory_lock(*MIGRATION_LOCK)))  # a run in progress
        holder.commit()
        second = pool.submit(upgrade, ini, url)
        wait_until(lambda: "another migration run" in caplog.text or second.done(), what="the second to wait")
        assert not second.done()
        # The first run builds an index CONCURRENTLY meanwhile, which waits for every open
        # snapshot: the waiting run must hold none (a blocked pg_advisory_lock did: a deadlock).
        holder.execute(text("CREATE TABLE busy (id integer)"))
        holder.commit()
        autocommit = holder.execution_options(isolation_level="AUTOCOMMIT")
        autocommit.execute(text("CREATE INDEX CONCURRENTLY ix_busy_id ON busy (id)"))
        autocommit.commit()
        holder.execution_options(isolation_level="READ COMMITTED")
        assert not second.done()
        assert "alembic_version" not in inspect(holder).get_table_names()
        holder.execute(select(func.pg_advisory_unlock(*MIGRATION_LOCK)))
        holder.commit()
        second.result(timeout=30)
    with engine.connect() as connection:
        assert set(inspect(connection).get_table_names()) == {"alembic_version", "busy", "first"}
    upgrade(ini, url)  # and again: nothing to do, no error
    engine.dispose()
