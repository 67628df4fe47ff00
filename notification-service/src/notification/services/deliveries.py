"""The webhook worker's transactions: claim due deliveries, record each attempt's outcome.

A claim moves the delivery's ``next_attempt_at`` past the attempt's time limit in the same
statement that takes it (``FOR UPDATE SKIP LOCKED``), so two workers never send one delivery
at once, and a worker that dies mid-attempt leaves it due again a little later: delivery is at
least once, with the same ``webhook-id`` every time.

A paused subscription's pending deliveries are not due (``next_attempt_at`` NULL, set by the
consumer, the pause and ``record_attempt``), so the claim's walk of ix_webhook_deliveries_due
meets only deliveries it can take, however many wait for a paused receiver; it still checks
``is_active``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Interval, bindparam, func, select, update
from sqlalchemy.orm import Session

from chassis.db import Database
from chassis.workers import due_now
from notification.domain import is_success, next_attempt_delay
from notification.models import WebhookDelivery, WebhookSubscription

# What the webhook worker is woken for when a transaction makes deliveries due (chassis.workers).
DELIVERIES_DUE = "webhook deliveries"


def deliveries_due(session: Session) -> None:
    """Once this transaction commits, the webhook worker of this process runs at once."""
    due_now(session, DELIVERIES_DUE)


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    id: int
    url: str
    secret: str
    webhook_id: str
    payload: dict[str, Any]
    # Which attempt this claim makes: its outcome is recorded only if no later claim was made.
    attempts: int


_DUE = (
    select(WebhookDelivery.id)
    .join(WebhookSubscription, WebhookSubscription.id == WebhookDelivery.subscription_id)
    .where(
        WebhookDelivery.status == "pending",
        WebhookDelivery.next_attempt_at <= func.now(),
        WebhookSubscription.is_active,
    )
    .order_by(WebhookDelivery.next_attempt_at)
    .limit(bindparam("p_limit"))
    .with_for_update(of=WebhookDelivery, skip_locked=True)
)
_CLAIM = (
    update(WebhookDelivery)
    .where(WebhookDelivery.id.in_(_DUE.scalar_subquery()))
    .where(WebhookSubscription.id == WebhookDelivery.subscription_id)
    .values(
        attempts=WebhookDelivery.attempts + 1,
        last_attempt_at=func.now(),
        next_attempt_at=func.now() + bindparam("p_lease", type_=Interval()),
    )
    .returning(
        WebhookDelivery.id,
        WebhookSubscription.url,
        WebhookSubscription.secret,
        WebhookDelivery.webhook_id,
        WebhookDelivery.payload,
        WebhookDelivery.attempts,
    )
)


def claim_deliveries(db: Database, limit: int, lease: timedelta) -> list[ClaimedDelivery]:
    """Up to ``limit`` due deliveries of active subscriptions, each claimed for ``lease``."""
    if limit < 1:
        return []
    with db.transaction() as session:
        rows = session.execute(_CLAIM, {"p_limit": limit, "p_lease": lease}).all()
    return [ClaimedDelivery(**row._mapping) for row in rows]


def record_attempt(
    db: Database,
    delivery_id: int,
    *,
    attempt: int,
    status_code: int | None,
    error: str | None,
    response_excerpt: str | None,
    retry_delays: Sequence[float],
) -> str | None:
    """Write the outcome of attempt number ``attempt``: delivered, or due again after the
    schedule's next delay, or failed once the schedule is spent. Returns the new status (None:
    the delivery is gone). An attempt that outlasted its claim, whose delivery was claimed again
    meanwhile, changes nothing: the later attempt's outcome decides."""
    with db.transaction() as session:
        delivery = session.get(WebhookDelivery, delivery_id, with_for_update=True)
        if delivery is None:  # its subscription was deleted meanwhile
            return None
        if delivery.attempts != attempt:
            return delivery.status
        delivery.last_status_code = status_code
        delivery.last_error = error[:300] if error else None
        delivery.response_excerpt = response_excerpt
        if status_code is not None and is_success(status_code):
            delivery.status = "delivered"
            delivery.next_attempt_at = None
            return delivery.status
        delivery.failures += 1
        delay = next_attempt_delay(retry_delays, delivery.failures)
        if delay is None:
            delivery.status = "failed"
            delivery.next_attempt_at = None
        elif _is_active(session, delivery.subscription_id):
            delivery.next_attempt_at = func.now() + delay
        else:
            # Paused while this attempt ran: not due until resumed. (A pause committing after
            # this read leaves this attempt in flight alone: its retry comes due at its time,
            # and the claim passes it over, is_active, until the subscription is resumed.)
            delivery.next_attempt_at = None
        return delivery.status


def _is_active(session: Session, subscription_id: int) -> bool:
    return bool(
        session.scalar(select(WebhookSubscription.is_active).where(WebhookSubscription.id == subscription_id))
    )
