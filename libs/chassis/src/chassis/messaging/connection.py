"""Broker connections, reconnect back-off and message properties shared by relay and consumer.

pika's ``BlockingConnection`` is not thread-safe: every thread opens its own
connection with ``connect`` and never hands it to another thread.
"""

from __future__ import annotations

import logging
import random
from contextlib import suppress
from typing import Any

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingConnection

from chassis.observability import redact_database_values

log = logging.getLogger("chassis.messaging")

# Headers the broker writes on dead-lettering and redelivery; never copied onto a republished message.
BROKER_HEADERS = frozenset(
    {
        "x-death",
        "x-delivery-count",
        "x-first-death-exchange",
        "x-first-death-queue",
        "x-first-death-reason",
        "x-last-death-exchange",
        "x-last-death-queue",
        "x-last-death-reason",
    }
)

BrokerError = pika.exceptions.AMQPError


def connect(amqp_url: str, *, name: str) -> BlockingConnection:
    """A new blocking connection for the calling thread, named ``name`` in the broker's listings.

    One attempt with short socket timeouts: the callers own the retry loop, and a
    thread must notice a dead broker quickly rather than hang in a connect.
    """
    params = pika.URLParameters(amqp_url)
    params.connection_attempts = 1
    params.socket_timeout = 5
    params.stack_timeout = 10
    # A broker under a memory alarm blocks publishers; fail and retry instead of blocking forever.
    params.blocked_connection_timeout = 60
    params.client_properties = {"connection_name": name}
    return pika.BlockingConnection(params)


def close_quietly(connection: BlockingConnection | None) -> None:
    """Close ``connection`` if it is open, ignoring errors of an already broken one."""
    if connection is not None and connection.is_open:
        with suppress(Exception):
            connection.close()


class Backoff:
    """Exponential back-off with jitter: ``initial``, doubling, at most ``maximum`` seconds."""

    def __init__(self, initial: float = 0.5, maximum: float = 30.0) -> None:
        self.initial = min(initial, maximum)
        self.maximum = maximum
        self._next = self.initial

    def next(self) -> float:
        """The delay to wait now; the following one will be twice as long (up to the maximum)."""
        delay = self._next
        self._next = min(self._next * 2, self.maximum)
        # Jitter keeps many replicas from reconnecting in lock-step after a broker restart.
        return delay * random.uniform(0.8, 1.0)

    def reset(self) -> None:
        self._next = self.initial


def describe_error(exc: BaseException) -> str:
    """A short, one-line description of ``exc`` for logs and ``x-error`` headers (no data values)."""
    lines = redact_database_values(str(exc)).strip().splitlines()
    if not lines:  # pika's connection errors often have an empty message
        return type(exc).__name__
    return f"{type(exc).__name__}: {lines[0]}"[:500]


def republished_properties(properties: pika.BasicProperties, headers: dict[str, Any]) -> pika.BasicProperties:
    """Properties for re-publishing a received message (retry, dead letter, replay).

    Keeps its identity (message id, type, correlation id ...) and makes it persistent;
    drops ``expiration`` and ``user_id``, which would expire or reject the copy.
    """
    return pika.BasicProperties(
        content_type=properties.content_type,
        content_encoding=properties.content_encoding,
        headers=headers,
        delivery_mode=pika.DeliveryMode.Persistent,
        priority=properties.priority,
        correlation_id=properties.correlation_id,
        message_id=properties.message_id,
        timestamp=properties.timestamp,
        type=properties.type,
        app_id=properties.app_id,
    )


def own_headers(properties: pika.BasicProperties) -> dict[str, Any]:
    """A message's headers without the ones the broker adds."""
    return {k: v for k, v in (properties.headers or {}).items() if k not in BROKER_HEADERS}
