"""The event pipeline's metrics: the outbox, the relay, the consumer and the dead letters.

- ``clinic_outbox_unpublished_events{service}`` and
  ``clinic_outbox_oldest_unpublished_age_seconds{service}``: computed at scrape time
  (``OutboxBacklog``, one indexed query on the unpublished rows' partial index), so they
  return to 0 as soon as the relay has caught up, and keep growing while it cannot publish.
- ``clinic_outbox_published_total`` / ``clinic_outbox_publish_failures_total``: the relay.
- ``clinic_events_consumed_total{service,event_type,outcome}`` (``handled``, ``duplicate``,
  ``failed``), ``clinic_event_retries_total``, ``clinic_events_dead_lettered_total`` and
  ``clinic_event_consumer_lag_seconds`` (histogram: from the event's ``occurred_at`` to the
  end of its handling): the consumer.
- ``clinic_consumer_queue_messages{service,queue}``: messages ready in the service's queue
  (``main``: the consumer's backlog) and in its dead-letter queue (``dlq``), refreshed by the
  consumer thread every ``QUEUE_DEPTH_INTERVAL`` seconds with passive declarations.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import text

from chassis.db import Database
from chassis.metrics import LAG_BUCKETS, counter, gauge, histogram

log = logging.getLogger("chassis.messaging.metrics")

QUEUE_DEPTH_INTERVAL = 5.0

OUTBOX_PUBLISHED = counter(
    "clinic_outbox_published_total", "Outbox events the relay published to the broker.", ["service"]
)
OUTBOX_PUBLISH_FAILURES = counter(
    "clinic_outbox_publish_failures_total",
    "Outbox events the broker refused or could not take (each stays pending and is retried).",
    ["service"],
)
EVENTS_CONSUMED = counter(
    "clinic_events_consumed_total",
    "Events the consumer took off its queue, by outcome: handled, duplicate (already in the inbox), failed.",
    ["service", "event_type", "outcome"],
)
EVENT_RETRIES = counter(
    "clinic_event_retries_total", "Failed events sent to a retry queue.", ["service", "event_type"]
)
EVENTS_DEAD_LETTERED = counter(
    "clinic_events_dead_lettered_total",
    "Events moved to the dead-letter queue after their last retry.",
    ["service", "event_type"],
)
CONSUMER_LAG = histogram(
    "clinic_event_consumer_lag_seconds",
    "Time from an event's occurrence at its producer to the end of its handling here.",
    ["service", "event_type"],
    buckets=LAG_BUCKETS,
)
QUEUE_MESSAGES = gauge(
    "clinic_consumer_queue_messages",
    "Messages ready in the service's event queue (main) and dead-letter queue (dlq).",
    ["service", "queue"],
)

_OUTBOX_BACKLOG = text(
    "SELECT count(*) AS pending, "
    "coalesce(extract(epoch FROM clock_timestamp() - min(created_at)), 0) AS oldest_age "
    "FROM outbox_events WHERE published_at IS NULL"
)


class OutboxBacklog:
    """The outboxes' backlog, read when Prometheus scrapes (never on a request's path).

    One collector per process, registered on first use; each running app adds its outbox
    (``watching``) for as long as its relay runs (a test process runs several apps at once).
    """

    def __init__(self) -> None:
        self._sources: dict[int, tuple[str, Database]] = {}
        self._lock = threading.Lock()
        self._registered = False

    @contextmanager
    def watching(self, service: str, db: Database) -> Iterator[None]:
        key = id(db)
        with self._lock:
            register, self._registered = not self._registered, True
            self._sources[key] = (service, db)
        if register:
            REGISTRY.register(self)  # asks describe(), not collect(): no query at registration
        try:
            yield
        finally:
            with self._lock:
                self._sources.pop(key, None)

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        pending = GaugeMetricFamily(
            "clinic_outbox_unpublished_events",
            "Committed outbox events not yet published to the broker.",
            labels=["service"],
        )
        age = GaugeMetricFamily(
            "clinic_outbox_oldest_unpublished_age_seconds",
            "Age of the oldest unpublished outbox event (0 when there is none).",
            labels=["service"],
        )
        return pending, age

    def describe(self) -> Iterator[Any]:
        yield from self._families()

    def collect(self) -> Iterator[Any]:
        pending, age = self._families()
        with self._lock:
            sources = list(self._sources.values())
        for service, db in sources:
            try:
                with db.engine.connect() as connection:
                    row = connection.execute(_OUTBOX_BACKLOG).one()
            except Exception as exc:  # a scrape while the database is down: no sample, not an error page
                log.debug("outbox backlog of %s unavailable: %s", service, exc)
                continue
            pending.add_metric([service], float(row.pending))
            age.add_metric([service], float(row.oldest_age))
        yield pending
        yield age


OUTBOX_BACKLOG = OutboxBacklog()


def record_consumed(service: str, event_type: str, outcome: str, occurred_at: Any | None = None) -> None:
    """Count one event's outcome and, once handled, its lag since it occurred."""
    EVENTS_CONSUMED.labels(service, event_type, outcome).inc()
    if occurred_at is not None:
        CONSUMER_LAG.labels(service, event_type).observe(max(0.0, time.time() - occurred_at.timestamp()))
