"""paused deliveries not due: a paused subscription's pending deliveries wait with no due time

A paused subscription's deliveries were queued due at once, and the webhook worker's claim
(ix_webhook_deliveries_due, in due order) walked every one of them before finding one it could
take, on every claim. They are now queued with ``next_attempt_at`` NULL, and resuming the
subscription makes them due (``services/subscriptions.py``); this makes the ones already
waiting the same. Data only: the column has always been nullable.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        UPDATE webhook_deliveries AS d SET next_attempt_at = NULL
        FROM webhook_subscriptions AS s
        WHERE s.id = d.subscription_id AND NOT s.is_active AND d.status = 'pending'
          AND d.next_attempt_at IS NOT NULL
        """
    )


def downgrade() -> None:
    # The previous version sends only due deliveries of active subscriptions, and resumes by
    # the flag alone: what waits for a paused one must be due, as it used to be.
    op.execute(
        """
        UPDATE webhook_deliveries SET next_attempt_at = now()
        WHERE status = 'pending' AND next_attempt_at IS NULL
        """
    )
