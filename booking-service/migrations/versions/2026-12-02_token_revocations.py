"""token revocations: what identity has taken back (ended sessions, role changes, deactivations)

Filled by the consumer from identity's events; every process reads it to refuse revoked
access tokens that reach this service directly (chassis.revocations).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

from chassis.revocations import create_revocations_table, drop_revocations_table

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_revocations_table(op)


def downgrade() -> None:
    drop_revocations_table(op)
