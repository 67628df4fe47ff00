"""role changed at: when a user's role last changed, so that tokens from before it stay refused

The gateway's token check refused a token naming a role the user no longer has, but after
admin -> patient -> admin a token issued before the first change names the current role again
and was accepted again (the other services, which record each change, refused it). Tokens
issued up to ``role_changed_at`` are now refused whatever role they name. identity sets it with
the change (its clock, the one ``iat`` and the event's ``occurred_at`` are taken by); a role
changed without it (psql) gets the database's clock from the trigger. Null: never changed.
The column changes only with ``role``, so the existing NOTIFY trigger already evicts the user
from every replica's cache.

Revision ID: 0007_role_changed_at
Revises: 0006_sessions
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_role_changed_at"
down_revision: str | None = "0006_sessions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, no default: a metadata-only change, no rewrite of users.
    op.add_column("users", sa.Column("role_changed_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        """
        CREATE FUNCTION set_role_changed_at() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            NEW.role_changed_at := clock_timestamp();
            RETURN NEW;
        END
        $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER trg_users_role_changed_at
        BEFORE UPDATE OF role ON users
        FOR EACH ROW
        WHEN (OLD.role IS DISTINCT FROM NEW.role
              AND OLD.role_changed_at IS NOT DISTINCT FROM NEW.role_changed_at)
        EXECUTE FUNCTION set_role_changed_at()
        """
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS trg_users_role_changed_at ON users")
    op.execute("DROP FUNCTION IF EXISTS set_role_changed_at()")
    op.drop_column("users", "role_changed_at")
