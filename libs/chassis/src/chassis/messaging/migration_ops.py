"""Alembic operations creating the outbox and inbox tables in a service's own migration.

In the service's initial migration::

    from chassis.messaging.migration_ops import create_messaging_tables, drop_messaging_tables

    def upgrade() -> None:
        create_messaging_tables(op)
        ...

    def downgrade() -> None:
        ...
        drop_messaging_tables(op)

Create both tables even in a service that only produces (or only consumes):
both models are on ``chassis.db.Base``, so autogenerate expects them.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql


def create_messaging_tables(op: Any) -> None:
    """Create ``outbox_events`` (with its partial index) and ``processed_events``."""
    op.create_table(
        "outbox_events",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("event_type", sa.String(length=255), nullable=False),
        sa.Column("payload", postgresql.JSONB(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("clock_timestamp()"),
            nullable=False,
        ),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_outbox_events"),
    )
    op.create_index(
        "ix_outbox_events_unpublished",
        "outbox_events",
        ["created_at"],
        postgresql_where=sa.text("published_at IS NULL"),
    )
    op.create_table(
        "processed_events",
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("event_type", sa.String(length=255), nullable=False),
        sa.Column(
            "processed_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.PrimaryKeyConstraint("event_id", name="pk_processed_events"),
    )


def drop_messaging_tables(op: Any) -> None:
    """Drop what ``create_messaging_tables`` created."""
    op.drop_table("processed_events")
    op.drop_index("ix_outbox_events_unpublished", table_name="outbox_events")
    op.drop_table("outbox_events")
