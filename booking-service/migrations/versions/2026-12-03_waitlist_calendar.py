"""waitlist and calendar feeds: entries, offers, openings; feeds and their key; appointment revisions

``appointments.revision`` counts changes of an appointment's status or time (the calendar
feed's SEQUENCE); a trigger keeps it, whichever path updates the row.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WAITING = sa.text("ended_at IS NULL")
OPEN = sa.text("state = 'open'")
TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("appointments", sa.Column("revision", sa.Integer(), server_default="0", nullable=False))
    op.execute(
        """
        CREATE FUNCTION appointments_count_revision() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            NEW.revision := OLD.revision + 1;
            RETURN NEW;
        END $$;
        CREATE TRIGGER tr_appointments_count_revision BEFORE UPDATE ON appointments FOR EACH ROW
        WHEN ((OLD.status, OLD.timeslot_id, OLD.start_time, OLD.end_time)
              IS DISTINCT FROM (NEW.status, NEW.timeslot_id, NEW.start_time, NEW.end_time))
        EXECUTE FUNCTION appointments_count_revision();
        """
    )
    op.create_table(
        "waitlist_entries",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("patient_id", sa.BigInteger(), nullable=False),
        sa.Column("doctor_id", sa.BigInteger(), nullable=False),
        sa.Column("date_from", sa.Date(), nullable=False),
        sa.Column("date_to", sa.Date(), nullable=False),
        sa.Column("range_start", TZ, nullable=False),
        sa.Column("range_end", TZ, nullable=False),
        sa.Column("created_at", TZ, server_default=sa.text("now()"), nullable=False),
        sa.Column("ended_at", TZ, nullable=True),
        sa.Column("end_reason", sa.String(length=16), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_waitlist_entries"),
        sa.CheckConstraint("date_to >= date_from", name="ck_waitlist_entries_dates_in_order"),
        sa.CheckConstraint("range_end > range_start", name="ck_waitlist_entries_range_in_order"),
        sa.CheckConstraint(
            "(ended_at IS NULL) = (end_reason IS NULL)", name="ck_waitlist_entries_end_reason_iff_ended"
        ),
        sa.CheckConstraint("end_reason IN ('left', 'booked')", name="ck_waitlist_entries_end_reason_known"),
    )
    op.create_index(
        "uq_waitlist_entries_waiting_range",
        "waitlist_entries",
        ["patient_id", "doctor_id", "date_from", "date_to"],
        unique=True,
        postgresql_where=WAITING,
    )
    op.create_index(
        "ix_waitlist_entries_waiting_doctor",
        "waitlist_entries",
        ["doctor_id", "created_at"],
        postgresql_where=WAITING,
    )
    op.create_index("ix_waitlist_entries_patient_id", "waitlist_entries", ["patient_id", "created_at"])
    op.create_table(
        "waitlist_offers",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("entry_id", sa.BigInteger(), nullable=False),
        sa.Column("timeslot_id", sa.BigInteger(), nullable=False),
        sa.Column("reservation_id", sa.Uuid(), nullable=False),
        sa.Column("start_time", TZ, nullable=False),
        sa.Column("end_time", TZ, nullable=False),
        sa.Column("expires_at", TZ, nullable=False),
        sa.Column("state", sa.String(length=16), server_default="open", nullable=False),
        sa.Column("announced", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("created_at", TZ, server_default=sa.text("now()"), nullable=False),
        sa.Column("closed_at", TZ, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_waitlist_offers"),
        sa.ForeignKeyConstraint(
            ["entry_id"], ["waitlist_entries.id"], name="fk_waitlist_offers_entry_id_waitlist_entries"
        ),
        sa.CheckConstraint(
            "state IN ('open', 'accepted', 'expired', 'withdrawn')", name="ck_waitlist_offers_state_known"
        ),
        sa.CheckConstraint(
            "(state = 'open') = (closed_at IS NULL)", name="ck_waitlist_offers_closed_iff_not_open"
        ),
    )
    op.create_index("uq_waitlist_offers_reservation_id", "waitlist_offers", ["reservation_id"], unique=True)
    op.create_index(
        "uq_waitlist_offers_open_entry", "waitlist_offers", ["entry_id"], unique=True, postgresql_where=OPEN
    )
    op.create_index(
        "uq_waitlist_offers_open_timeslot",
        "waitlist_offers",
        ["timeslot_id"],
        unique=True,
        postgresql_where=OPEN,
    )
    op.create_index(
        "ix_waitlist_offers_open_expires_at", "waitlist_offers", ["expires_at"], postgresql_where=OPEN
    )
    op.create_index("ix_waitlist_offers_entry_id_timeslot_id", "waitlist_offers", ["entry_id", "timeslot_id"])
    op.create_table(
        "waitlist_openings",
        sa.Column("timeslot_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("doctor_id", sa.BigInteger(), nullable=False),
        sa.Column("start_time", TZ, nullable=False),
        sa.Column("end_time", TZ, nullable=False),
        sa.Column("noticed_at", TZ, server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("timeslot_id", name="pk_waitlist_openings"),
    )
    op.create_table(
        "calendar_feeds",
        sa.Column("user_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("nonce", sa.LargeBinary(), nullable=False),
        sa.Column("secret_hash", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", TZ, server_default=sa.text("now()"), nullable=False),
        sa.Column("rotated_at", TZ, server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name="pk_calendar_feeds"),
        sa.CheckConstraint("role IN ('doctor', 'patient')", name="ck_calendar_feeds_role_known"),
    )
    op.create_index("uq_calendar_feeds_secret_hash", "calendar_feeds", ["secret_hash"], unique=True)
    op.create_table(
        "calendar_feed_key",
        sa.Column("id", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("key", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_calendar_feed_key"),
        sa.CheckConstraint("id = 1", name="ck_calendar_feed_key_single_row"),
    )


def downgrade() -> None:
    op.drop_table("calendar_feed_key")
    op.drop_table("calendar_feeds")
    op.drop_table("waitlist_openings")
    op.drop_table("waitlist_offers")
    op.drop_table("waitlist_entries")
    op.execute("DROP TRIGGER tr_appointments_count_revision ON appointments")
    op.execute("DROP FUNCTION appointments_count_revision()")
    op.drop_column("appointments", "revision")
