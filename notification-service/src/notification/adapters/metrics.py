"""notification-service's own metrics (chassis.metrics serves them with the HTTP and event ones).

- ``clinic_notification_attempts_total{channel}``: webhook requests made, mails tried (``webhook``,
  ``mail``).
- ``clinic_notification_deliveries_total{channel,outcome}``: what each attempt came to. Webhooks:
  ``delivered``, ``retrying`` (the receiver did not take it; tried again later), ``failed`` (the
  retry schedule is spent). Mails: ``sent``, ``retrying``, ``failed``, ``in_doubt`` (the connection
  broke while the server took it: never sent again), ``skipped`` (obsolete, or the recipient's
  account is deactivated).
- ``clinic_notification_delivery_lag_seconds{channel}``: a webhook from its event's occurrence
  (the payload's ``timestamp``) to its receiver's 2xx; a mail from its queuing (its event's
  handling, or its reminder falling due) to the server taking it.
- ``clinic_notification_pending{channel}`` and ``clinic_notification_oldest_pending_age_seconds
  {channel}``: deliveries of active subscriptions and mails not yet delivered (due or waiting for
  their next attempt), computed when Prometheus scrapes (``NotificationBacklog``), never on a
  request's or a worker's path. Every replica reports the same database: aggregate with ``max``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime

from fastapi import FastAPI
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import text

from chassis.app import Hook
from chassis.db import Database
from chassis.metrics import LAG_BUCKETS, ScrapedGauges, counter, histogram

ATTEMPTS = counter(
    "clinic_notification_attempts_total", "Webhook requests made and mails tried, by channel.", ["channel"]
)
DELIVERIES = counter(
    "clinic_notification_deliveries_total",
    "Outcomes of delivery attempts, by channel (webhook, mail) and outcome.",
    ["channel", "outcome"],
)
DELIVERY_LAG = histogram(
    "clinic_notification_delivery_lag_seconds",
    "Webhooks: from the event's occurrence to the receiver's 2xx; mails: from queuing to sent.",
    ["channel"],
    buckets=LAG_BUCKETS,
)


def record_webhook(status: str | None, occurred_at: str | None) -> None:
    """One webhook attempt recorded as ``status`` (``delivered``, ``pending``, ``failed``; None:
    its subscription is gone); ``occurred_at`` is the payload's ISO ``timestamp``."""
    ATTEMPTS.labels("webhook").inc()
    if status is None:
        return
    outcome = "retrying" if status == "pending" else status
    DELIVERIES.labels("webhook", outcome).inc()
    if status == "delivered" and occurred_at:
        try:
            since = datetime.fromisoformat(occurred_at.replace("Z", "+00:00"))
        except ValueError:
            return
        _observe_lag("webhook", since)


def record_mail(outcome: str, queued_at: datetime | None) -> None:
    """One mail attempt's outcome (``MailWorker.send``'s answer; ``pending`` counts as ``retrying``)."""
    if outcome == "lost claim":  # another worker has it: its attempt is the one that counts
        return
    ATTEMPTS.labels("mail").inc()
    DELIVERIES.labels("mail", "retrying" if outcome == "pending" else outcome).inc()
    if outcome == "sent" and queued_at is not None:
        _observe_lag("mail", queued_at)


def _observe_lag(channel: str, since: datetime) -> None:
    DELIVERY_LAG.labels(channel).observe(max(0.0, time.time() - since.timestamp()))


# Each part reads its partial index only, never the table's delivered and sent rows (a scan of
# every mail on every scrape): the deliveries through ix_webhook_deliveries_due, past the paused
# subscriptions' rows (pending, not due: next_attempt_at NULL); the mails through ix_mails_due
# and ix_mails_claimed, one status each (neither serves ``status IN ('pending', 'sending')``).
# tests/integration/test_query_plans.py checks the plan.
_BACKLOG = text(
    """
SELECT 'webhook' AS channel, count(*) AS pending,
       coalesce(extract(epoch FROM clock_timestamp() - min(d.created_at)), 0) AS oldest_age
FROM webhook_deliveries d JOIN webhook_subscriptions s ON s.id = d.subscription_id
WHERE d.status = 'pending' AND d.next_attempt_at IS NOT NULL AND s.is_active
UNION ALL
SELECT 'mail', count(*), coalesce(extract(epoch FROM clock_timestamp() - min(m.created_at)), 0)
FROM (SELECT created_at FROM mails WHERE status = 'pending'
      UNION ALL
      SELECT created_at FROM mails WHERE status = 'sending') AS m
"""
)


def backlog(db: Database) -> dict[str, tuple[float, float]]:
    """``{channel: (undelivered, oldest one's age in seconds)}`` of ``db``."""
    with db.engine.connect() as connection:
        rows = connection.execute(_BACKLOG).all()
    return {row.channel: (float(row.pending), float(row.oldest_age)) for row in rows}


class NotificationBacklog(ScrapedGauges):
    """Undelivered webhooks and mails, read when Prometheus scrapes; each running app adds its
    database (``backlog_hook``)."""

    def families(self) -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        pending = GaugeMetricFamily(
            "clinic_notification_pending",
            "Webhook deliveries (of active subscriptions) and mails not delivered yet.",
            labels=["channel"],
        )
        age = GaugeMetricFamily(
            "clinic_notification_oldest_pending_age_seconds",
            "Age of the oldest undelivered webhook delivery or mail (0 when there is none).",
            labels=["channel"],
        )
        return pending, age

    def read(self, label: str, source: Database, families: Sequence[GaugeMetricFamily]) -> None:
        pending, age = families
        for channel, (count, oldest_age) in backlog(source).items():
            pending.add_metric([channel], count)
            age.add_metric([channel], oldest_age)


BACKLOG = NotificationBacklog()


def backlog_hook(db: Database) -> Hook:
    """The hook that makes ``db``'s backlog part of the process's metrics while the app runs."""

    @contextmanager
    def watch(_app: FastAPI) -> Iterator[None]:
        with BACKLOG.watching("notification", db):
            yield

    return watch
