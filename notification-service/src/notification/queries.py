"""Reads of the admin API: subscriptions and their delivery log."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from chassis.pagination import PageParams
from notification.errors import SubscriptionNotFound
from notification.models import WebhookDelivery, WebhookSubscription


def list_subscriptions(session: Session, page: PageParams) -> tuple[int, list[WebhookSubscription]]:
    count = session.scalar(select(func.count()).select_from(WebhookSubscription)) or 0
    rows = session.scalars(
        select(WebhookSubscription).order_by(WebhookSubscription.id).offset(page.offset).limit(page.limit)
    )
    return count, list(rows)


def list_deliveries(
    session: Session, subscription_id: int, page: PageParams
) -> tuple[int, list[WebhookDelivery]]:
    """A subscription's deliveries, newest first."""
    if session.get(WebhookSubscription, subscription_id) is None:
        raise SubscriptionNotFound(f"No webhook has id {subscription_id}.")
    of_subscription = WebhookDelivery.subscription_id == subscription_id
    count = session.scalar(select(func.count()).where(of_subscription)) or 0
    rows = session.scalars(
        select(WebhookDelivery)
        .where(of_subscription)
        .order_by(WebhookDelivery.id.desc())
        .offset(page.offset)
        .limit(page.limit)
    )
    return count, list(rows)
