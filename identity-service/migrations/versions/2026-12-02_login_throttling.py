"""login throttling: failed logins per account and per client address (issue 13)

Each failed login (and each wrong ``current_password``) is a row for a while, so that every
replica of identity counts the same failures. The account is a SHA-256 of the lower-cased email
(the same for an email with no account, so a lockout tells nothing about which accounts exist);
the address is the client's, an IPv6 one as its /64. Rows older than the throttling window are
pruned by identity's retention job.

Revision ID: 0004_login_throttling
Revises: 0003
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_login_throttling"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "login_failures",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("account_key", sa.LargeBinary(length=32), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column(
            "failed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("clock_timestamp()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name="pk_login_failures"),
    )
    op.create_index("ix_login_failures_account_key", "login_failures", ["account_key", "failed_at"])
    op.create_index("ix_login_failures_address", "login_failures", ["address", "failed_at"])


def downgrade() -> None:
    op.drop_table("login_failures")
