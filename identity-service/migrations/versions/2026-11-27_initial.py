"""initial: users, refresh tokens, and the user-status notification trigger

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("full_name", sa.String(150), nullable=False),
        sa.Column("phone", sa.String(32), nullable=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("date_joined", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("deactivated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revision", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        # Emails are stored lower-cased (checked), so a plain unique constraint makes them
        # unique case-insensitively, and INSERT ... ON CONFLICT (email) can target it.
        sa.UniqueConstraint("email", name="uq_users_email"),
        sa.CheckConstraint("email = lower(email)", name="ck_users_email_lower_case"),
        sa.CheckConstraint("role IN ('admin', 'doctor', 'patient')", name="ck_users_role_known"),
        sa.CheckConstraint("btrim(full_name) <> ''", name="ck_users_full_name_not_blank"),
        sa.CheckConstraint(
            "is_active = (deactivated_at IS NULL)", name="ck_users_deactivated_at_iff_inactive"
        ),
        sa.CheckConstraint("revision >= 1", name="ck_users_revision_positive"),
    )

    op.create_table(
        "refresh_tokens",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("token_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("family_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("replaced_by_id", sa.BigInteger(), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_refresh_tokens"),
        sa.UniqueConstraint("token_hash", name="uq_refresh_tokens_token_hash"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_refresh_tokens_user_id_users", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["replaced_by_id"],
            ["refresh_tokens.id"],
            name="fk_refresh_tokens_replaced_by_id_refresh_tokens",
            ondelete="SET NULL",
        ),
        sa.CheckConstraint("octet_length(token_hash) = 32", name="ck_refresh_tokens_token_hash_sha256"),
        sa.CheckConstraint("expires_at > issued_at", name="ck_refresh_tokens_expires_after_issued"),
    )
    op.create_index("ix_refresh_tokens_family_id", "refresh_tokens", ["family_id"])
    op.create_index("ix_refresh_tokens_user_id", "refresh_tokens", ["user_id"])

    # Every replica caches (user id -> active, role) for the gateway's token check and
    # LISTENs on this channel, so a deactivation or role change made anywhere (API, CLI,
    # psql) evicts the user from every cache as soon as it commits.
    op.execute(
        """
        CREATE FUNCTION notify_user_status_changed() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('identity_user_status', OLD.id::text);
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER trg_users_status_changed
        AFTER UPDATE OF role, is_active ON users
        FOR EACH ROW
        WHEN (OLD.role IS DISTINCT FROM NEW.role OR OLD.is_active IS DISTINCT FROM NEW.is_active)
        EXECUTE FUNCTION notify_user_status_changed()
        """
    )
    op.execute(
        """
        CREATE TRIGGER trg_users_deleted
        AFTER DELETE ON users
        FOR EACH ROW
        EXECUTE FUNCTION notify_user_status_changed()
        """
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS trg_users_deleted ON users")
    op.execute("DROP TRIGGER IF EXISTS trg_users_status_changed ON users")
    op.execute("DROP FUNCTION IF EXISTS notify_user_status_changed()")
    op.drop_table("refresh_tokens")
    op.drop_table("users")
