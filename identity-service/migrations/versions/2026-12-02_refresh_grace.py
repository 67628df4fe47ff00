"""refresh grace: a rotated refresh token keeps its successor, sealed, for the grace period

Two concurrent refreshes with one token (two tabs) both get the same successor instead of
revoking the session. The successor is encrypted under a key derived from the presented token,
which the database does not hold; the retention job clears it once the grace period is over.

Revision ID: 0005_refresh_grace
Revises: 0004_login_throttling
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_refresh_grace"
down_revision: str | None = "0004_login_throttling"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("refresh_tokens", sa.Column("successor_sealed", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    op.drop_column("refresh_tokens", "successor_sealed")
