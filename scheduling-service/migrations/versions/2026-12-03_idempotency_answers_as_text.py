"""Idempotency-Key answers stored as the JSON text that was sent (were JSONB)

A replay is then the first answer byte for byte, and an answer is not parsed into JSONB on
the way in (chassis.idempotency).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from collections.abc import Sequence

from alembic import op

from chassis.idempotency import store_answers_as_jsonb, store_answers_as_text

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    store_answers_as_text(op)


def downgrade() -> None:
    store_answers_as_jsonb(op)
