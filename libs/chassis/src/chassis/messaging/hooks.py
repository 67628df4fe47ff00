"""Start-up/shutdown hooks running the relay and the consumer inside a service's app."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

from fastapi import FastAPI

from chassis.app import Hook
from chassis.db import Database
from chassis.messaging.consumer import DEFAULT_RETRY_DELAYS, EventConsumer, Handler
from chassis.messaging.metrics import OUTBOX_BACKLOG
from chassis.messaging.relay import OutboxRelay


def messaging_hooks(
    service: str,
    db: Database,
    amqp_url: str,
    handlers: Mapping[str, Handler] | None = None,
    *,
    enabled: bool = True,
    retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS,
    prefetch: int = 20,
    publish: bool = True,
) -> list[Hook]:
    """Hooks for ``create_service_app(hooks=...)``: the outbox relay, and a consumer if ``handlers``.

    They start background threads at start-up (which never fail start-up when the
    broker is down: the threads keep retrying) and stop them at shutdown. The
    running objects are on ``app.state.outbox_relay`` / ``app.state.event_consumer``.
    ``enabled=False`` (``MESSAGING_ENABLED=false``) returns no hooks at all.
    """
    if not enabled:
        return []
    hooks: list[Hook] = []
    if publish:

        @contextmanager
        def run_relay(app: FastAPI) -> Iterator[OutboxRelay]:
            relay = OutboxRelay(db, amqp_url, service=service)
            app.state.outbox_relay = relay
            relay.start()
            try:
                # The outbox's backlog, read at each scrape of /metrics (chassis.messaging.metrics).
                with OUTBOX_BACKLOG.watching(service, db):
                    yield relay
            finally:
                relay.stop()

        hooks.append(run_relay)
    if handlers:
        consumer = EventConsumer(
            service, db, amqp_url, handlers, retry_delays=retry_delays, prefetch=prefetch
        )

        @contextmanager
        def run_consumer(app: FastAPI) -> Iterator[EventConsumer]:
            app.state.event_consumer = consumer
            consumer.start()
            try:
                yield consumer
            finally:
                consumer.stop()

        hooks.append(run_consumer)
    return hooks
