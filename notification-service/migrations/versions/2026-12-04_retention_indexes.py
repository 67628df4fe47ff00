"""retention indexes: finished mails and webhook deliveries by age, appointments by their end

The retention job (``notification.adapters.retention``) deletes mails and deliveries that
nothing will send again, and the local copy of appointments, once NOTIFICATION_RETENTION_DAYS
old; without these indexes each of its batches read the whole table.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (name, table, column, partial index predicate)
INDEXES = (
    ("ix_mails_finished", "mails", "created_at", "status IN ('sent', 'skipped', 'failed', 'in_doubt')"),
    (
        "ix_webhook_deliveries_finished",
        "webhook_deliveries",
        "created_at",
        "status IN ('delivered', 'failed')",
    ),
    ("ix_appointments_end_time", "appointments", "end_time", None),
)


def upgrade() -> None:
    # CONCURRENTLY (outside a transaction): mails and deliveries are written by every event, and
    # a plain CREATE INDEX would hold the consumer and the workers off while it builds. A build
    # interrupted before (this migration then not recorded as done) leaves an invalid index
    # behind: drop it first, so the retry builds a valid one.
    with op.get_context().autocommit_block():
        for name, table, column, where in INDEXES:
            op.drop_index(name, table_name=table, postgresql_concurrently=True, if_exists=True)
            op.create_index(
                name,
                table,
                [column],
                postgresql_where=sa.text(where) if where else None,
                postgresql_concurrently=True,
            )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        for name, table, _column, _where in INDEXES:
            op.drop_index(name, table_name=table, postgresql_concurrently=True)
