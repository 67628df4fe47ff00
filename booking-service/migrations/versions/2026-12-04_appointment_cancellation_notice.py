"""each appointment keeps the cancellation notice it was booked under

spec/API.md, "Booking policy": a policy change applies to bookings made after it, never to
existing appointments. Booking read the doctor's current notice at each cancellation, so a
doctor raising it trapped patients who had booked under a shorter one. The booking now stores
the notice in force on the appointment (``appointments.cancellation_notice_minutes``), and
a patient's DELETE or reschedule is judged by that.

Existing appointments get their doctor's notice as booking knows it now: the rule they were
judged by until this migration, so nothing changes for them (booking never recorded the
notice in force at their booking, and 0 would lift every doctor's notice from every upcoming
appointment at once). Only active appointments still to start can be cancelled or moved by
their patient, so only they are updated: the rest of the table (past, cancelled, completed)
is not rewritten under the lock the new column holds. The update changes neither status nor
time, so it leaves ``appointments.revision`` (the calendar feeds' SEQUENCE) as it is.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "appointments",
        sa.Column("cancellation_notice_minutes", sa.Integer(), server_default="0", nullable=False),
    )
    op.execute(
        """
        UPDATE appointments AS a
        SET cancellation_notice_minutes = p.cancellation_notice_minutes
        FROM doctor_policies AS p
        WHERE p.doctor_id = a.doctor_id AND p.cancellation_notice_minutes <> 0
          AND a.status IN ('pending', 'confirmed') AND a.start_time > now()
        """
    )


def downgrade() -> None:
    op.drop_column("appointments", "cancellation_notice_minutes")
