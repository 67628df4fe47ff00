"""The event consumer: one quorum queue per service, idempotent handlers, retries, dead letters.

For each message: parse the envelope, then in ONE database transaction insert the
event id into the inbox (``ON CONFLICT DO NOTHING``) and, if it was new, run the
handler; commit; only then ack. A redelivered or duplicated event finds its id in
the inbox, skips the handler and is acked.

A failing handler (or a malformed message) is re-published (through ``<service>.requeue``,
the only exchange besides ``clinic.events`` the service's broker user may write to) to the next retry queue
with ``x-attempt`` incremented and the original is acked; after the last retry it
goes to ``<service>.events.dlq`` with ``x-error``, ``x-attempts`` and
``x-original-routing-key``. A database outage is not the message's fault: the
consumer closes its connection (unacked messages return to the queue), waits
until the database answers, and reconnects, without spending the message's retries.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel
from pika.spec import Basic
from sqlalchemy import bindparam
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from chassis.db import Database
from chassis.messaging.connection import (
    Backoff,
    close_quietly,
    connect,
    describe_error,
    own_headers,
    republished_properties,
)
from chassis.messaging.envelope import Envelope, check_event_type
from chassis.messaging.metrics import (
    EVENT_RETRIES,
    EVENTS_DEAD_LETTERED,
    QUEUE_DEPTH_INTERVAL,
    QUEUE_MESSAGES,
    record_consumed,
)
from chassis.messaging.outbox import ProcessedEvent
from chassis.messaging.topology import (
    ServiceQueues,
    check_service_name,
    delay_ms,
    ensure_consumer_topology,
)
from chassis.observability import request_id_var
from chassis.tracing import consumer_span

log = logging.getLogger("chassis.messaging.consumer")

Handler = Callable[[Session, Envelope], None]
"""Handles one event inside the transaction that records it in the inbox; raising means failure."""

DEFAULT_RETRY_DELAYS: tuple[float, ...] = (1, 5, 30, 120)

_TICK = 0.2  # the longest the consumer thread goes without checking for stop()


class DatabaseUnavailable(Exception):
    """The database could not be reached while handling a message."""


class EventConsumer:
    """Consumes ``<service>.events`` with ``handlers`` (event type → handler) in a daemon thread."""

    def __init__(
        self,
        service: str,
        db: Database,
        amqp_url: str,
        handlers: Mapping[str, Handler],
        *,
        retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS,
        prefetch: int = 20,
        max_backoff: float = 30.0,
    ) -> None:
        if not handlers:
            raise ValueError("an EventConsumer needs at least one handler")
        self.service = check_service_name(service)
        self.db = db
        self.amqp_url = amqp_url
        self.handlers = {check_event_type(event_type): h for event_type, h in handlers.items()}
        self.retry_delays = tuple(float(d) for d in retry_delays)
        for delay in self.retry_delays:
            delay_ms(delay)  # fail now, not in the thread, on a zero or negative delay
        self.prefetch = prefetch
        self.max_backoff = max_backoff
        self.queues = ServiceQueues(self.service)
        self._retry_queues = [self.queues.retry(d) for d in self.retry_delays]
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._ready = threading.Event()

    def start(self) -> None:
        """Start consuming in a daemon thread (does nothing if it already runs)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name=f"{self.service}-consumer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the message in hand; unacked prefetched messages go back to the queue."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def wait_ready(self, timeout: float) -> bool:
        """Wait until the queues are declared and bound and the consumer is subscribed."""
        return self._ready.wait(timeout)

    def _run(self) -> None:
        backoff = Backoff(0.5, self.max_backoff)
        while not self._stopping.is_set():
            try:
                self._consume(backoff)
            except DatabaseUnavailable as exc:
                log.warning("%s consumer: the database is unreachable (%s); pausing", self.service, exc)
                self._wait_for_database(backoff)
            except Exception as exc:
                delay = backoff.next()
                log.warning(
                    "%s consumer: %s; reconnecting in %.1fs", self.service, describe_error(exc), delay
                )
                self._stopping.wait(delay)

    def _consume(self, backoff: Backoff) -> None:
        connection = connect(self.amqp_url, name=f"{self.service}-consumer")
        try:
            ensure_consumer_topology(connection, self.service, self.handlers, self.retry_delays)
            channel = connection.channel()
            channel.confirm_delivery()
            channel.basic_qos(prefetch_count=self.prefetch)
            channel.basic_consume(self.queues.main, self._on_message, auto_ack=False)
            self._ready.set()
            backoff.reset()
            depth_channel = connection.channel()
            next_depth = 0.0
            while not self._stopping.is_set():
                if time.monotonic() >= next_depth:
                    depth_channel = self._measure_queues(connection, depth_channel)
                    next_depth = time.monotonic() + QUEUE_DEPTH_INTERVAL
                connection.process_data_events(time_limit=_TICK)
        finally:
            self._ready.clear()
            # Closing returns every unacked message to the queue.
            close_quietly(connection)

    def _measure_queues(self, connection: Any, channel: BlockingChannel) -> BlockingChannel:
        """Messages ready in the main and dead-letter queues, for ``clinic_consumer_queue_messages``.

        Passive declarations on a channel of their own (a refusal closes only that channel).
        """
        try:
            if not channel.is_open:
                channel = connection.channel()
            for label, queue in (("main", self.queues.main), ("dlq", self.queues.dlq)):
                declared = channel.queue_declare(queue, passive=True)
                QUEUE_MESSAGES.labels(self.service, label).set(declared.method.message_count)
        except pika.exceptions.ChannelClosed as exc:
            log.debug("%s consumer: measuring the queues failed: %s", self.service, exc)
        return channel

    def _wait_for_database(self, backoff: Backoff) -> None:
        while not self._stopping.wait(backoff.next()):
            try:
                self.db.ping()
                return
            except Exception as exc:
                log.debug("%s consumer: the database still does not answer: %s", self.service, exc)

    def _on_message(
        self, channel: BlockingChannel, method: Basic.Deliver, properties: pika.BasicProperties, body: bytes
    ) -> None:
        try:
            envelope = Envelope.from_json(json.loads(body))
        except (ValueError, TypeError, RecursionError) as exc:
            self._retry_or_dead_letter(channel, method, properties, body, f"malformed message: {exc}")
            return
        handler = self.handlers.get(envelope.event_type)
        if handler is None:
            # A type this version does not know, on its queue: in a rolling upgrade, a newer
            # version bound it (its migration ran first) while this replica still consumes. It
            # goes the way of a failure, to a later attempt (most likely by a newer replica) and
            # at worst to the dead letters, to be replayed: never acked away.
            log.warning("%s consumer: no handler for %s here; retrying it", self.service, envelope.event_type)
            record_consumed(self.service, envelope.event_type, "failed")
            error = f"no handler for {envelope.event_type} in this version of {self.service}"
            self._retry_or_dead_letter(channel, method, properties, body, error)
            return
        # The handling joins the producer's trace, and its log lines carry the request id that
        # caused the event (chassis.tracing, chassis.observability).
        token = request_id_var.set(envelope.correlation_id)
        try:
            with consumer_span(
                envelope.event_type, envelope.traceparent, **{"messaging.consumer.group.name": self.service}
            ):
                self._handle_and_ack(channel, method, properties, body, handler, envelope)
        finally:
            request_id_var.reset(token)

    def _handle_and_ack(
        self,
        channel: BlockingChannel,
        method: Basic.Deliver,
        properties: pika.BasicProperties,
        body: bytes,
        handler: Handler,
        envelope: Envelope,
    ) -> None:
        try:
            first_time = self._handle(handler, envelope)
        except DatabaseUnavailable:
            raise
        except Exception as exc:
            log.warning(
                "%s consumer: handling %s %s failed (attempt %d)",
                self.service,
                envelope.event_type,
                envelope.event_id,
                _attempt(properties.headers or {}) + 1,
                exc_info=True,
            )
            record_consumed(self.service, envelope.event_type, "failed")
            self._retry_or_dead_letter(channel, method, properties, body, describe_error(exc))
            return
        channel.basic_ack(method.delivery_tag)
        if first_time:
            record_consumed(self.service, envelope.event_type, "handled", envelope.occurred_at)
            log.debug("%s consumer: handled %s %s", self.service, envelope.event_type, envelope.event_id)
        else:
            record_consumed(self.service, envelope.event_type, "duplicate")

    def _handle(self, handler: Handler, envelope: Envelope) -> bool:
        """Run ``handler`` in the transaction recording the event; False if it was handled before."""
        try:
            with self.db.transaction() as session:
                first_time = session.execute(
                    _RECORD_PROCESSED, {"p_event_id": envelope.event_id, "p_event_type": envelope.event_type}
                ).first()
                if first_time is None:
                    log.info("%s consumer: %s already processed", self.service, envelope.event_id)
                    return False
                handler(session, envelope)
            return True
        except (OperationalError, InterfaceError) as exc:
            # A deadlock or a statement timeout is the message's failure; an unreachable server is not.
            if self._database_answers():
                raise
            raise DatabaseUnavailable(describe_error(exc.orig or exc)) from exc

    def _database_answers(self) -> bool:
        try:
            self.db.ping()
        except Exception:
            return False
        return True

    def _retry_or_dead_letter(
        self,
        channel: BlockingChannel,
        method: Basic.Deliver,
        properties: pika.BasicProperties,
        body: bytes,
        error: str,
    ) -> None:
        headers = own_headers(properties)
        attempt = _attempt(headers)
        headers.pop("x-attempt", None)
        headers.setdefault("x-original-routing-key", method.routing_key)
        headers["x-error"] = error[:500]
        event_type = str(headers["x-original-routing-key"])
        if attempt < len(self._retry_queues):
            headers["x-attempt"] = attempt + 1
            target = self._retry_queues[attempt]
            EVENT_RETRIES.labels(self.service, event_type).inc()
        else:
            headers["x-attempts"] = attempt + 1
            target = self.queues.dlq
            EVENTS_DEAD_LETTERED.labels(self.service, event_type).inc()
            log.error(
                "%s consumer: message %s dead-lettered after %d attempts: %s",
                self.service,
                properties.message_id,
                attempt + 1,
                error,
            )
        try:
            channel.basic_publish(
                self.queues.requeue_exchange,
                target,
                body,
                republished_properties(properties, headers),
                mandatory=True,
            )
        except (pika.exceptions.UnroutableError, pika.exceptions.NackError) as exc:
            # The retry or dead-letter queue is gone: leave the message to the queue's delivery limit.
            log.error("%s consumer: could not move a message to %s: %s", self.service, target, exc)
            channel.basic_nack(method.delivery_tag, requeue=True)
            return
        channel.basic_ack(method.delivery_tag)


# The inbox row of each message, built once (a statement built per message cost more than running
# it), on the table: an insert of the ORM entity goes through the ORM's bulk-insert machinery,
# which cost more than the rest of the message's handling together.
_INBOX = ProcessedEvent.__table__
_RECORD_PROCESSED = (
    insert(_INBOX)
    .values(event_id=bindparam("p_event_id"), event_type=bindparam("p_event_type"))
    .on_conflict_do_nothing(index_elements=[_INBOX.c.event_id])
    .returning(_INBOX.c.event_id)
)


def _attempt(headers: Mapping[str, Any]) -> int:
    """How many times the message has failed already (``x-attempt``, 0 when absent)."""
    value = headers.get("x-attempt", 0)
    return value if isinstance(value, int) and value >= 0 else 0
