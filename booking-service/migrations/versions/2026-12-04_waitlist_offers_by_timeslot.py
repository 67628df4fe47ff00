"""waitlist offers found by their timeslot: who already let a timeslot go

The waitlist worker passes over a patient who let the opening's timeslot go (an offer of it
that expired or was withdrawn) on any of their entries, not only on the entry being looked
at: a patient with many overlapping entries got the same timeslot again through each of them
(``booking.services.offers._next_entry``). The offers of one timeslot are few; without this
index they are found only through each candidate's entries, all of the patient's entries per
candidate, which grows with the square of a patient's entries.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Not CONCURRENTLY: an autocommit block would commit the migrations before it in the same
    # run, and 0007's column must not be seen without 0009's trigger by replicas of the release
    # before it (a rolling upgrade). waitlist_offers holds one row per offer made: small.
    op.create_index("ix_waitlist_offers_timeslot_id", "waitlist_offers", ["timeslot_id"])


def downgrade() -> None:
    op.drop_index("ix_waitlist_offers_timeslot_id", table_name="waitlist_offers")
