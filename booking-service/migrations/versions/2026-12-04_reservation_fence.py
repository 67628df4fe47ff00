"""the reservation fence: a reservation booking has answered "none stored" for is never stored

scheduling's hold sweeper frees an expired hold when booking answers that no appointment was
stored for its reservation. A booking (or reschedule, or waitlist acceptance) still in flight
under that reservation could otherwise commit afterwards: an appointment whose timeslot
scheduling has just freed. So the answer is recorded (``abandoned_reservations``, written by
the lookup under an exclusive advisory lock of the reservation), and a deferred constraint
trigger takes the same lock, shared, at the commit of any transaction that gives an
appointment a reservation, and refuses the commit if that reservation was abandoned. Either
the lookup waits for the commit and finds the appointment, or the commit finds the answer.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The advisory lock space of reservations (booking.services.reservations.RESERVATION_LOCKS).
RESERVATION_LOCKS = 7301


def upgrade() -> None:
    op.create_table(
        "abandoned_reservations",
        sa.Column("reservation_id", sa.Uuid(), nullable=False),
        sa.Column(
            "abandoned_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.PrimaryKeyConstraint("reservation_id", name="pk_abandoned_reservations"),
    )
    op.execute(
        f"""
        CREATE FUNCTION appointments_refuse_abandoned_reservation() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            -- Waits for a lookup of this reservation that is deciding; the next statement sees
            -- what it decided (READ COMMITTED: a new snapshot per statement).
            PERFORM pg_advisory_xact_lock_shared({RESERVATION_LOCKS}, hashtext(NEW.reservation_id::text));
            IF EXISTS (SELECT 1 FROM abandoned_reservations WHERE reservation_id = NEW.reservation_id) THEN
                RAISE EXCEPTION 'reservation % was given up: its hold was freed', NEW.reservation_id
                    USING ERRCODE = 'check_violation',
                          CONSTRAINT = 'ck_appointments_reservation_not_abandoned';
            END IF;
            RETURN NULL;
        END $$;
        CREATE CONSTRAINT TRIGGER tr_appointments_reservation_not_abandoned
        AFTER INSERT OR UPDATE OF reservation_id ON appointments
        DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
        EXECUTE FUNCTION appointments_refuse_abandoned_reservation();
        """
    )


def downgrade() -> None:
    op.execute(
        "DROP TRIGGER tr_appointments_reservation_not_abandoned ON appointments;"
        " DROP FUNCTION appointments_refuse_abandoned_reservation();"
    )
    op.drop_table("abandoned_reservations")
