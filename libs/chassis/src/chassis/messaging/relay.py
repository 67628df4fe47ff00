"""The outbox relay: publishes committed outbox rows to ``clinic.events``.

It claims a batch with ``FOR UPDATE SKIP LOCKED`` (so several relays, in several
processes, publish disjoint batches), publishes each row with publisher confirms
and ``mandatory=True``, and marks it published in the same transaction. A crash
between the broker's confirm and the commit publishes that row again later, which
consumers' inboxes absorb: delivery is at least once, effects are exactly once.

It wakes as soon as a transaction that added an event commits (PostgreSQL
LISTEN/NOTIFY on a dedicated connection), and polls every ``poll_interval``
seconds in case a notification was missed.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import UTC, datetime
from typing import Any

import pika
import psycopg
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection
from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import SQLAlchemyError

from chassis.db import Database
from chassis.messaging.connection import Backoff, BrokerError, close_quietly, connect, describe_error
from chassis.messaging.metrics import OUTBOX_PUBLISH_FAILURES, OUTBOX_PUBLISHED
from chassis.messaging.outbox import NOTIFY_CHANNEL, OutboxEvent
from chassis.messaging.topology import EXCHANGE, ensure_exchanges

log = logging.getLogger("chassis.messaging.relay")

# The longest the relay thread goes without checking for stop() and servicing AMQP heartbeats.
_TICK = 0.2


class OutboxRelay:
    """Publishes the outbox of ``db``; ``start()`` runs it in a daemon thread until ``stop()``."""

    def __init__(
        self,
        db: Database,
        amqp_url: str,
        *,
        batch_size: int = 100,
        poll_interval: float = 1.0,
        max_backoff: float = 30.0,
        service: str = "",
    ) -> None:
        self.db = db
        # The label of its metrics (chassis.messaging.metrics).
        self._published = OUTBOX_PUBLISHED.labels(service)
        self._failures = OUTBOX_PUBLISH_FAILURES.labels(service)
        self.amqp_url = amqp_url
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.max_backoff = max_backoff
        self.published_total = 0
        self._lock = threading.Lock()
        self._local = threading.local()  # each thread's own broker connection
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._ready = threading.Event()

    def start(self) -> None:
        """Run the relay in a daemon thread (does nothing if it already runs)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="outbox-relay", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the relay thread to finish its batch and stop; wait up to ``timeout`` seconds."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def wait_ready(self, timeout: float) -> bool:
        """Wait until the relay thread is connected to the broker and listening for commits."""
        return self._ready.wait(timeout)

    def publish_pending(self) -> int:
        """Publish one batch of unpublished events from the calling thread; returns how many.

        Raises the broker's error if the connection fails, after committing what was published.
        """
        channel = self._channel()
        published: list[Any] = []
        failed: list[dict[str, Any]] = []
        broken: BaseException | None = None
        with self.db.engine.begin() as connection:
            rows = connection.execute(_CLAIM, {"p_limit": self.batch_size}).all()
            for row in rows:
                try:
                    self._publish(channel, row)
                except (pika.exceptions.UnroutableError, pika.exceptions.NackError) as exc:
                    # The broker refused this one; it stays pending and is retried on the next pass.
                    failed.append({"p_id": row.id, "p_error": describe_error(exc)})
                    log.warning("the broker refused event %s (%s): %s", row.id, row.event_type, exc)
                    continue
                except BrokerError as exc:
                    failed.append({"p_id": row.id, "p_error": describe_error(exc)})
                    broken = exc
                    break
                published.append(row.id)
            # One statement for the whole published batch (plus one per refusal, which is rare).
            if published:
                connection.execute(_MARK_PUBLISHED, {"p_ids": published, "p_now": datetime.now(UTC)})
            if failed:
                connection.execute(_MARK_FAILED, failed)
        with self._lock:
            self.published_total += len(published)
        self._published.inc(len(published))
        if failed:
            self._failures.inc(len(failed))
        if broken is not None:
            self.close()
            raise broken
        return len(published)

    def close(self) -> None:
        """Close the calling thread's broker connection, if it has one."""
        close_quietly(getattr(self._local, "connection", None))
        self._local.connection = None
        self._local.channel = None

    def _channel(self) -> BlockingChannel:
        channel: BlockingChannel | None = getattr(self._local, "channel", None)
        if channel is not None and channel.is_open:
            return channel
        self.close()
        connection = connect(self.amqp_url, name="outbox-relay")
        try:
            ensure_exchanges(connection)
            channel = connection.channel()
            channel.confirm_delivery()
        except BaseException:
            close_quietly(connection)
            raise
        self._local.connection = connection
        self._local.channel = channel
        return channel

    @staticmethod
    def _publish(channel: BlockingChannel, row: Any) -> None:
        payload = row.payload
        channel.basic_publish(
            EXCHANGE,
            row.event_type,
            _json_bytes(payload),
            pika.BasicProperties(
                content_type="application/json",
                delivery_mode=pika.DeliveryMode.Persistent,
                message_id=str(row.id),
                type=row.event_type,
                correlation_id=payload.get("correlation_id"),
                app_id=payload.get("producer"),
                timestamp=int(row.created_at.timestamp()),
            ),
            mandatory=True,
        )

    def _run(self) -> None:
        backoff = Backoff(0.5, self.max_backoff)
        listener: psycopg.Connection | None = None
        try:
            while not self._stopping.is_set():
                try:
                    if listener is None:
                        listener = self._listen()
                    self._channel()
                    self._ready.set()
                    # A full batch means there may be more: go again without waiting.
                    while not self._stopping.is_set() and self.publish_pending() == self.batch_size:
                        pass
                    backoff.reset()
                    self._wait_for_work(listener)
                except Exception as exc:
                    self._ready.clear()
                    # Reconnect whichever side failed (both when the cause is unknown).
                    if not isinstance(exc, BrokerError):
                        _close_listener(listener)
                        listener = None
                    if not isinstance(exc, SQLAlchemyError | psycopg.Error):
                        self.close()
                    delay = backoff.next()
                    log.warning("outbox relay: %s; retrying in %.1fs", describe_error(exc), delay)
                    self._stopping.wait(delay)
        finally:
            self._ready.clear()
            _close_listener(listener)
            self.close()

    def _listen(self) -> psycopg.Connection:
        url = self.db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        listener = psycopg.connect(url, autocommit=True, connect_timeout=5)
        listener.execute(f"LISTEN {NOTIFY_CHANNEL}")
        return listener

    def _wait_for_work(self, listener: psycopg.Connection) -> None:
        """Return on a commit notification, after ``poll_interval`` seconds, or on stop()."""
        deadline = time.monotonic() + self.poll_interval
        connection: BlockingConnection = self._local.connection
        while not self._stopping.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            for _ in listener.notifies(timeout=min(_TICK, remaining), stop_after=1):
                return
            # BlockingConnection only answers heartbeats while called; an idle relay must call it.
            connection.process_data_events(time_limit=0)


# The relay's statements, built once: plain Core on the outbox table (no ORM objects per event).
_OUTBOX = OutboxEvent.__table__
_CLAIM = (
    select(_OUTBOX.c.id, _OUTBOX.c.event_type, _OUTBOX.c.payload, _OUTBOX.c.created_at)
    .where(_OUTBOX.c.published_at.is_(None))
    .order_by(_OUTBOX.c.created_at, _OUTBOX.c.id)
    .limit(bindparam("p_limit"))
    .with_for_update(skip_locked=True)
)
_MARK_PUBLISHED = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id.in_(bindparam("p_ids", expanding=True)))
    .values(published_at=bindparam("p_now"), attempts=_OUTBOX.c.attempts + 1, last_error=None)
)
_MARK_FAILED = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id == bindparam("p_id"))
    .values(attempts=_OUTBOX.c.attempts + 1, last_error=bindparam("p_error"))
)


def _json_bytes(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def _close_listener(listener: psycopg.Connection | None) -> None:
    if listener is not None:
        try:
            listener.close()
        except psycopg.Error as exc:
            log.debug("closing the LISTEN connection failed: %s", exc)
