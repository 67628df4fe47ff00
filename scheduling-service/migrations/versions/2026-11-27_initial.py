"""initial: the doctors read model, timeslots, cancelled reservations, outbox and inbox

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from chassis.messaging import create_messaging_tables, drop_messaging_tables

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # btree_gist lets one GiST index mix doctor_id (=) with a time range (&&).
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")

    op.create_table(
        "doctors",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("is_doctor", sa.Boolean(), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint("revision >= 0", name=op.f("ck_doctors_revision_not_negative")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_doctors")),
    )

    op.create_table(
        "timeslots",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("doctor_id", sa.BigInteger(), nullable=False),
        sa.Column("start_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(16), server_default="available", nullable=False),
        sa.Column("reservation_id", sa.Uuid(), nullable=True),
        sa.Column("held_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_timeslots")),
        sa.ForeignKeyConstraint(["doctor_id"], ["doctors.id"], name=op.f("fk_timeslots_doctor_id_doctors")),
        sa.CheckConstraint("end_time > start_time", name=op.f("ck_timeslots_ends_after_start")),
        sa.CheckConstraint(
            "end_time - start_time BETWEEN interval '5 minutes' AND interval '12 hours'",
            name=op.f("ck_timeslots_length_bounds"),
        ),
        sa.CheckConstraint("state IN ('available', 'held', 'booked')", name=op.f("ck_timeslots_state_known")),
        sa.CheckConstraint(
            "(state = 'available' AND reservation_id IS NULL AND held_until IS NULL)"
            " OR (state = 'held' AND reservation_id IS NOT NULL AND held_until IS NOT NULL)"
            " OR (state = 'booked' AND reservation_id IS NOT NULL AND held_until IS NULL)",
            name=op.f("ck_timeslots_state_consistent"),
        ),
        # Half-open ranges: 09:00-09:30 and 09:30-10:00 may both exist.
        postgresql.ExcludeConstraint(
            (sa.column("doctor_id"), "="),
            (sa.text("tstzrange(start_time, end_time, '[)')"), "&&"),
            name=op.f("ex_timeslots_no_overlap"),
            using="gist",
        ),
    )
    op.create_index(op.f("ix_timeslots_doctor_id_start_time"), "timeslots", ["doctor_id", "start_time"])
    op.create_index(
        op.f("ix_timeslots_free_doctor_id_start_time"),
        "timeslots",
        ["doctor_id", "start_time"],
        postgresql_where=sa.text("state = 'available'"),
    )
    op.create_index(
        op.f("ix_timeslots_held_until"),
        "timeslots",
        ["held_until"],
        postgresql_where=sa.text("state = 'held'"),
    )

    op.create_table(
        "cancelled_reservations",
        sa.Column("reservation_id", sa.Uuid(), nullable=False),
        sa.Column("timeslot_id", sa.BigInteger(), nullable=False),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("reservation_id", name=op.f("pk_cancelled_reservations")),
    )

    create_messaging_tables(op)


def downgrade() -> None:
    drop_messaging_tables(op)
    op.drop_table("cancelled_reservations")
    op.drop_index(op.f("ix_timeslots_held_until"), table_name="timeslots")
    op.drop_index(op.f("ix_timeslots_free_doctor_id_start_time"), table_name="timeslots")
    op.drop_index(op.f("ix_timeslots_doctor_id_start_time"), table_name="timeslots")
    op.drop_table("timeslots")
    op.drop_table("doctors")
