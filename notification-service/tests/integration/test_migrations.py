"""The hand-written migration and the models describe the same schema."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import chassis.messaging  # noqa: F401  (puts the outbox and inbox tables on the metadata)
from notification.models import Base


def test_the_migrated_database_matches_the_models(db):
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
