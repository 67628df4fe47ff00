"""initial: appointments, the read model of users, the outbox and inbox

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from chassis.messaging.migration_ops import create_messaging_tables, drop_messaging_tables

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACTIVE = sa.text("status IN ('pending', 'confirmed')")


def upgrade() -> None:
    create_messaging_tables(op)
    op.create_table(
        "appointments",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("reservation_id", sa.Uuid(), nullable=False),
        sa.Column("timeslot_id", sa.BigInteger(), nullable=False),
        sa.Column("doctor_id", sa.BigInteger(), nullable=False),
        sa.Column("patient_id", sa.BigInteger(), nullable=False),
        sa.Column("start_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), server_default="", nullable=False),
        sa.Column("cancellation_reason", sa.Text(), nullable=True),
        sa.Column("cancelled_by", sa.String(length=16), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_appointments"),
        sa.CheckConstraint(
            "status IN ('pending', 'confirmed', 'cancelled', 'completed', 'no_show')",
            name=op.f("ck_appointments_status_known"),
        ),
        sa.CheckConstraint("end_time > start_time", name=op.f("ck_appointments_ends_after_start")),
        sa.CheckConstraint(
            "(status = 'cancelled') = (cancelled_by IS NOT NULL)",
            name=op.f("ck_appointments_cancelled_by_iff_cancelled"),
        ),
        sa.CheckConstraint("char_length(reason) <= 500", name=op.f("ck_appointments_reason_length")),
        sa.CheckConstraint(
            "char_length(cancellation_reason) <= 500", name=op.f("ck_appointments_cancellation_reason_length")
        ),
    )
    # One active appointment per timeslot: the database's last word against double booking.
    op.create_index(
        "uq_appointments_active_timeslot",
        "appointments",
        ["timeslot_id"],
        unique=True,
        postgresql_where=ACTIVE,
    )
    op.create_index("uq_appointments_reservation_id", "appointments", ["reservation_id"], unique=True)
    op.create_index("ix_appointments_patient_id_created_at", "appointments", ["patient_id", "created_at"])
    op.create_index("ix_appointments_doctor_id_created_at", "appointments", ["doctor_id", "created_at"])
    op.create_index("ix_appointments_start_time", "appointments", ["start_time"])

    op.create_table(
        "users",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("full_name", sa.String(length=150), server_default="", nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.CheckConstraint("role IN ('admin', 'doctor', 'patient')", name=op.f("ck_users_role_known")),
    )


def downgrade() -> None:
    op.drop_table("users")
    op.drop_index("ix_appointments_start_time", table_name="appointments")
    op.drop_index("ix_appointments_doctor_id_created_at", table_name="appointments")
    op.drop_index("ix_appointments_patient_id_created_at", table_name="appointments")
    op.drop_index("uq_appointments_reservation_id", table_name="appointments")
    op.drop_index("uq_appointments_active_timeslot", table_name="appointments")
    op.drop_table("appointments")
    drop_messaging_tables(op)
