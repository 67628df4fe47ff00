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
    for column in ("email", "full_name"):
        op.create_index(
            f"ix_users_{column}_trgm",
            "users",
            [column],
            postgresql_using="gin",
            postgresql_ops={column: "gin_trgm_ops"},
        )


def downgrade() -> None:
    for column in ("email", "full_name"):
        op.drop_index(f"ix_users_{column}_trgm", table_name="users")
