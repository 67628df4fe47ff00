"""Use cases of the admin API: webhook subscriptions, and delivering one again."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, func, not_, update
from sqlalchemy.orm import Session

from notification.adapters.targets import resolve_target
from notification.domain import TargetRefused
from notification.errors import DeliveryNotFound, SubscriptionNotFound, WebhookUrlRefused
from notification.models import WebhookDelivery, WebhookSubscription
from notification.services.deliveries import deliveries_due


def new_secret() -> str:
    """``whsec_`` + base64 of 32 random bytes (Standard Webhooks' secret format)."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def check_url(url: str, *, allow_private: bool) -> None:
    """Refuse (422 naming ``url``) a URL that is not http(s), does not resolve, or leads inside."""
    try:
        resolve_target(url, allow_private=allow_private)
    except TargetRefused as exc:
        raise WebhookUrlRefused(str(exc)) from exc


def create_subscription(
    session: Session, *, url: str, event_types: Sequence[str], description: str, allow_private: bool
) -> WebhookSubscription:
    check_url(url, allow_private=allow_private)
    subscription = WebhookSubscription(
        url=url, event_types=list(event_types), description=description, is_active=True, secret=new_secret()
    )
    with session.begin():
        session.add(subscription)
    return subscription


def update_subscription(
    session: Session, subscription_id: int, changes: dict[str, Any], *, allow_private: bool
) -> WebhookSubscription:
    """Change a subscription. Pausing it (``is_active`` false) makes its pending deliveries not
    due (``next_attempt_at`` NULL: the workers' claim never walks them); resuming makes them due
    now, and wakes this process's webhook worker: the backlog goes out at once."""
    if "url" in changes:
        check_url(changes["url"], allow_private=allow_private)
    with session.begin():
        subscription = _subscription(session, subscription_id, lock=True)
        was_active = subscription.is_active
        for name, value in changes.items():
            setattr(subscription, name, value)
        if changes:
            subscription.updated_at = func.now()
        if "is_active" in changes and changes["is_active"] != was_active:
            _pause_or_resume_deliveries(session, subscription_id, active=changes["is_active"])
    session.refresh(subscription)
    return subscription


def _pause_or_resume_deliveries(session: Session, subscription_id: int, *, active: bool) -> None:
    # Under the subscription's lock: the consumer (which reads it FOR KEY SHARE) queues this
    # subscription's deliveries before this, and is seen here, or after it, and sees the change.
    pending = update(WebhookDelivery).where(
        WebhookDelivery.subscription_id == subscription_id, WebhookDelivery.status == "pending"
    )
    if not active:
        # Not an attempt in flight (claimed, its outcome not yet written, its claim not yet out):
        # made not due, a resume would let a second worker send it again meanwhile. Its outcome
        # makes it not due (record_attempt); a claim that ran out is due and skipped (is_active).
        in_flight = and_(
            WebhookDelivery.attempts > WebhookDelivery.failures, WebhookDelivery.next_attempt_at > func.now()
        )
        session.execute(pending.where(not_(in_flight)).values(next_attempt_at=None))
        return
    resumed = session.execute(
        pending.where(WebhookDelivery.next_attempt_at.is_(None)).values(next_attempt_at=func.now())
    )
    if resumed.rowcount:
        deliveries_due(session)


def delete_subscription(session: Session, subscription_id: int) -> None:
    """The subscription and its delivery log go; pending deliveries are not sent."""
    with session.begin():
        session.delete(_subscription(session, subscription_id, lock=True))


def redeliver(session: Session, subscription_id: int, delivery_id: int) -> WebhookDelivery:
    """Queue the delivery again now, with the same webhook-id and body, and a fresh retry
    schedule; for a paused subscription, queued not due: it goes out once it is resumed."""
    with session.begin():
        # Read as the consumer does (FOR KEY SHARE): a pause or resume meanwhile is waited for.
        subscription = _subscription(session, subscription_id, lock={"read": True, "key_share": True})
        delivery = session.get(WebhookDelivery, delivery_id, with_for_update=True)
        if delivery is None or delivery.subscription_id != subscription_id:
            raise DeliveryNotFound(f"Webhook {subscription_id} has no delivery {delivery_id}.")
        delivery.status = "pending"
        delivery.failures = 0
        delivery.next_attempt_at = func.now() if subscription.is_active else None
        if subscription.is_active:
            deliveries_due(session)
    session.refresh(delivery)
    return delivery


def get_subscription(session: Session, subscription_id: int) -> WebhookSubscription:
    return _subscription(session, subscription_id)


def _subscription(
    session: Session, subscription_id: int, *, lock: bool | dict[str, bool] = False
) -> WebhookSubscription:
    subscription = session.get(WebhookSubscription, subscription_id, with_for_update=lock)
    if subscription is None:
        raise SubscriptionNotFound(f"No webhook has id {subscription_id}.")
    return subscription
