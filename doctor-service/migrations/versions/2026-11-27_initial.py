"""initial: doctor profiles, their search indexes, the outbox and the inbox

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from chassis.messaging import create_messaging_tables, drop_messaging_tables

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LISTED = sa.text("is_active")


def upgrade() -> None:
    # pg_trgm is a trusted extension: a database owner without superuser may create it.
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.create_table(
        "doctors",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("full_name", sa.String(150), nullable=False),
        sa.Column("specialty", sa.String(100), nullable=False),
        sa.Column("bio", sa.Text(), nullable=False),
        sa.Column("years_of_experience", sa.Integer(), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("user_revision", sa.BigInteger(), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_doctors")),
        sa.CheckConstraint(
            "years_of_experience BETWEEN 0 AND 80", name=op.f("ck_doctors_years_of_experience_range")
        ),
        sa.CheckConstraint("revision >= 1", name=op.f("ck_doctors_revision_positive")),
    )
    op.create_index("ix_doctors_listed_full_name_id", "doctors", ["full_name", "id"], postgresql_where=LISTED)
    op.create_index(
        "ix_doctors_listed_full_name_trgm",
        "doctors",
        ["full_name"],
        postgresql_using="gin",
        postgresql_ops={"full_name": "gin_trgm_ops"},
        postgresql_where=LISTED,
    )
    op.create_index(
        "ix_doctors_listed_specialty_trgm",
        "doctors",
        ["specialty"],
        postgresql_using="gin",
        postgresql_ops={"specialty": "gin_trgm_ops"},
        postgresql_where=LISTED,
    )
    op.create_index(
        "ix_doctors_listed_specialty_lower",
        "doctors",
        [sa.text("lower(specialty)"), "full_name", "id"],
        postgresql_where=LISTED,
    )
    create_messaging_tables(op)


def downgrade() -> None:
    drop_messaging_tables(op)
    op.drop_table("doctors")
