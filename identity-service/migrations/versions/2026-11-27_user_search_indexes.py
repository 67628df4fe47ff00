"""user search indexes: trigram GIN indexes on email and full_name for /api/users/?search=

The admin's user search is ILIKE '%term%' on the email or the name: without these it read
every user (twice: the count and the page).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # pg_trgm is a trusted extension: a database owner without superuser may create it.
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    # CONCURRENTLY (outside a transaction): users is a table of a running system, and a plain
    # CREATE INDEX would hold off every registration and profile change while it builds.
    # A build interrupted before (this migration then not recorded as done) leaves an invalid
    # index behind: drop it first, so the retry builds a valid one.
    with op.get_context().autocommit_block():
        for column in ("email", "full_name"):
            name = f"ix_users_{column}_trgm"
            op.drop_index(name, table_name="users", postgresql_concurrently=True, if_exists=True)
            op.create_index(
                name,
                "users",
                [column],
                postgresql_using="gin",
                postgresql_ops={column: "gin_trgm_ops"},
                postgresql_concurrently=True,
            )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        for column in ("email", "full_name"):
            op.drop_index(f"ix_users_{column}_trgm", table_name="users", postgresql_concurrently=True)
