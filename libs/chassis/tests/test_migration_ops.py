"""The Alembic helpers that services call from their initial migration."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import MetaData, create_engine, inspect
from sqlalchemy.pool import NullPool

from chassis.messaging import OutboxEvent, ProcessedEvent, create_messaging_tables, drop_messaging_tables
from chassis.settings import normalise_database_url


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
