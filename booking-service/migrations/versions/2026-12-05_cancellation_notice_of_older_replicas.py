"""an appointment inserted without its cancellation notice gets its doctor's

0007 gave ``appointments.cancellation_notice_minutes`` a default of 0. In a rolling upgrade,
replicas of the release before it keep booking after it ran, and their inserts do not name the
column: those appointments got 0, which lets their patients cancel or move them up to the last
minute whatever the doctor's notice (the new release judges by the stored value), and nothing
would ever repair them. Now the column has no default, and an insert that leaves it out (NULL)
takes the doctor's notice as booking knows it, as 0007 backfilled the rows before it. The
release's own inserts always name it (``policy.check_booking``), so the trigger's condition
is all they pay.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION appointments_cancellation_notice() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            NEW.cancellation_notice_minutes := COALESCE(
                (SELECT cancellation_notice_minutes FROM doctor_policies WHERE doctor_id = NEW.doctor_id), 0
            );
            RETURN NEW;
        END
        $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER appointments_cancellation_notice BEFORE INSERT ON appointments
        FOR EACH ROW WHEN (NEW.cancellation_notice_minutes IS NULL)
        EXECUTE FUNCTION appointments_cancellation_notice()
        """
    )
    op.alter_column("appointments", "cancellation_notice_minutes", server_default=None)


def downgrade() -> None:
    op.alter_column("appointments", "cancellation_notice_minutes", server_default="0")
    op.execute("DROP TRIGGER appointments_cancellation_notice ON appointments")
    op.execute("DROP FUNCTION appointments_cancellation_notice()")
