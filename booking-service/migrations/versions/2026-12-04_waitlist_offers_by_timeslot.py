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


INDEX = "ix_waitlist_offers_timeslot_id"


def upgrade() -> None:
    # CONCURRENTLY: the table is written by every offer and booking of an offer, and nothing
    # prunes it, so a plain CREATE INDEX would hold them off while it builds. A build interrupted
    # before leaves an invalid index behind: drop it first, so the retry builds a valid one.
    with op.get_context().autocommit_block():
        op.drop_index(INDEX, table_name="waitlist_offers", postgresql_concurrently=True, if_exists=True)
        op.create_index(INDEX, "waitlist_offers", ["timeslot_id"], postgresql_concurrently=True)


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index(INDEX, table_name="waitlist_offers", postgresql_concurrently=True)
