"""lifecycle: appointment history, doctors' booking policies, Idempotency-Key

- ``appointment_history``: one row per change of an appointment, written in the change's
  transaction; append-only (a trigger refuses UPDATE and DELETE).
- ``doctor_policies``: the per-patient limit and the cancellation notice of each doctor's
  booking policy, fed by ``doctor.profile.updated``.
- ``idempotency_keys`` (chassis.idempotency).

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
    op.create_table(
        "appointment_history",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("appointment_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "at", sa.DateTime(timezone=True), server_default=sa.text("clock_timestamp()"), nullable=False
        ),
        sa.Column("actor_id", sa.BigInteger(), nullable=True),
        sa.Column("actor_role", sa.String(length=16), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=True),
        sa.Column("to_status", sa.String(length=16), nullable=True),
        sa.Column("from_timeslot_id", sa.BigInteger(), nullable=True),
        sa.Column("to_timeslot_id", sa.BigInteger(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_appointment_history"),
        sa.CheckConstraint(
            "action IN ('booked', 'status_changed', 'rescheduled', 'cancelled')",
            name=op.f("ck_appointment_history_action_known"),
        ),
        sa.CheckConstraint(
            "actor_role IN ('admin', 'doctor', 'patient', 'system')",
            name=op.f("ck_appointment_history_actor_role_known"),
        ),
    )
    op.create_index("ix_appointment_history_appointment_id", "appointment_history", ["appointment_id", "id"])
    # Append-only, in the database: history is never rewritten.
    op.execute(
        """
        CREATE FUNCTION appointment_history_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'appointment_history is append-only';
        END $$;
        CREATE TRIGGER appointment_history_append_only
            BEFORE UPDATE OR DELETE ON appointment_history
            FOR EACH ROW EXECUTE FUNCTION appointment_history_append_only();
        """
    )
    op.create_table(
        "doctor_policies",
        sa.Column("doctor_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("cancellation_notice_minutes", sa.Integer(), server_default="0", nullable=False),
        sa.Column("max_active_per_patient", sa.Integer(), nullable=True),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("doctor_id", name="pk_doctor_policies"),
    )


def downgrade() -> None:
    op.drop_table("doctor_policies")
    op.execute("DROP TRIGGER appointment_history_append_only ON appointment_history")
    op.execute("DROP FUNCTION appointment_history_append_only()")
    op.drop_index("ix_appointment_history_appointment_id", table_name="appointment_history")
    op.drop_table("appointment_history")
    drop_idempotency_table(op)
