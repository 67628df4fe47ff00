"""lifecycle: doctors' booking policy (notice and horizon) and Idempotency-Key

- ``doctors.min_notice_minutes``, ``doctors.booking_horizon_days``: what scheduling applies of
  each doctor's booking policy (its hold and the free listing judge start times), fed by
  ``doctor.profile.updated``; ``policy_revision`` is doctor-service's revision of the last one.
- ``idempotency_keys`` (chassis.idempotency) for POST /api/timeslots/ and bulk.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from chassis.idempotency import create_idempotency_table, drop_idempotency_table

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_idempotency_table(op)
    op.add_column(
        "doctors", sa.Column("min_notice_minutes", sa.Integer(), server_default="0", nullable=False)
    )
    op.add_column("doctors", sa.Column("booking_horizon_days", sa.Integer(), nullable=True))
    op.add_column("doctors", sa.Column("policy_revision", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    op.drop_column("doctors", "policy_revision")
    op.drop_column("doctors", "booking_horizon_days")
    op.drop_column("doctors", "min_notice_minutes")
    drop_idempotency_table(op)
