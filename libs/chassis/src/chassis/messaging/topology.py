"""Exchanges and queues, declared idempotently by whoever uses them.

Every declarer must pass identical arguments, or RabbitMQ closes the channel with
406 PRECONDITION_FAILED; so each declaration lives here and nowhere else.

- ``clinic.events``: topic exchange, routing key = event type; events no queue is
  bound to go to its alternate exchange ``clinic.unrouted`` (fanout) and are kept
  in the queue ``clinic.unrouted`` instead of being dropped.
- ``<service>.events``: the consuming service's quorum queue, bound to the types it
  handles; past ``x-delivery-limit`` deliveries (a message that keeps crashing the
  consumer) the broker dead-letters it to ``<service>.events.dlq``.
- ``<service>.events.retry.<ms>ms``: one queue per retry delay; a message waits there
  for its TTL and then returns through the default exchange to ``<service>.events``
  alone, so a retry never reaches other services again.
- ``<service>.events.dlq``: messages that failed every retry, to inspect and replay.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection
from pika.exceptions import ChannelClosedByBroker

EXCHANGE = "clinic.events"
UNROUTED_EXCHANGE = "clinic.unrouted"
UNROUTED_QUEUE = "clinic.unrouted"
UNROUTED_MAX_LENGTH = 100_000
# RabbitMQ 3.10 has no default delivery limit on quorum queues; 4.x defaults to 20.
DELIVERY_LIMIT = 20

_SERVICE_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")


def check_service_name(service: str) -> str:
    """``service`` if it can prefix queue names (lowercase letters, digits, ``-`` and ``_``)."""
    if not isinstance(service, str) or not _SERVICE_NAME.match(service):
        raise ValueError(f"invalid service name {service!r}")
    return service


def retry_queue_name(service: str, delay_seconds: float) -> str:
    """The retry queue of ``service`` whose messages wait ``delay_seconds``."""
    return f"{service}.events.retry.{delay_ms(delay_seconds)}ms"


def delay_ms(delay_seconds: float) -> int:
    ms = round(delay_seconds * 1000)
    if ms < 1:
        raise ValueError(f"retry delays must be at least 1 ms, not {delay_seconds!r}")
    return ms


@dataclass(frozen=True, slots=True)
class ServiceQueues:
    """The names of one consuming service's queues."""

    service: str

    @property
    def main(self) -> str:
        return f"{self.service}.events"

    @property
    def dlq(self) -> str:
        return f"{self.service}.events.dlq"

    def retry(self, delay_seconds: float) -> str:
        return retry_queue_name(self.service, delay_seconds)


def declare_exchanges(channel: BlockingChannel) -> None:
    """Declare ``clinic.events`` with its alternate exchange and the ``clinic.unrouted`` queue."""
    channel.exchange_declare(UNROUTED_EXCHANGE, "fanout", durable=True)
    channel.queue_declare(UNROUTED_QUEUE, durable=True, arguments={"x-max-length": UNROUTED_MAX_LENGTH})
    channel.queue_bind(UNROUTED_QUEUE, UNROUTED_EXCHANGE)
    channel.exchange_declare(
        EXCHANGE, "topic", durable=True, arguments={"alternate-exchange": UNROUTED_EXCHANGE}
    )


def declare_service_queues(channel: BlockingChannel, service: str) -> ServiceQueues:
    """Declare ``<service>.events`` and its dead-letter queue (no bindings, no retry queues)."""
    queues = ServiceQueues(check_service_name(service))
    # Classic, not quorum: listing dead letters re-queues them, and a quorum queue's
    # delivery limit (20 by default from RabbitMQ 4.0) would eventually drop them.
    channel.queue_declare(queues.dlq, durable=True)
    channel.queue_declare(
        queues.main,
        durable=True,
        arguments={
            "x-queue-type": "quorum",
            "x-delivery-limit": DELIVERY_LIMIT,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": queues.dlq,
        },
    )
    return queues


def declare_retry_queues(channel: BlockingChannel, service: str, delays: Sequence[float]) -> list[str]:
    """Declare one TTL queue per delay (one TTL per queue: expiry only happens at the head)."""
    queues = ServiceQueues(check_service_name(service))
    names = []
    for delay in delays:
        name = queues.retry(delay)
        channel.queue_declare(
            name,
            durable=True,
            arguments={
                "x-queue-type": "quorum",
                "x-message-ttl": delay_ms(delay),
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": queues.main,
            },
        )
        names.append(name)
    return names


def declare_consumer_topology(
    channel: BlockingChannel, service: str, event_types: Iterable[str], retry_delays: Sequence[float]
) -> ServiceQueues:
    """Everything a consuming service needs: exchanges, its queues, and one binding per event type.

    The retry queues come last, after the bindings: once they exist, every event the service
    consumes is routed to it (what ``consumer_topology_declared`` checks for a publisher).
    """
    declare_exchanges(channel)
    queues = declare_service_queues(channel, service)
    for event_type in sorted(set(event_types)):
        channel.queue_bind(queues.main, EXCHANGE, routing_key=event_type)
    declare_retry_queues(channel, service, retry_delays)
    return queues


def consumer_topology_declared(
    connection: BlockingConnection, service: str, retry_delays: Sequence[float]
) -> bool:
    """Whether ``declare_consumer_topology`` finished for ``service``: its queue and its retry
    queues (declared after the bindings) exist. A publisher that must not lose its first
    events to ``clinic.unrouted`` waits for this (deploy/k8s/wait_for_queues.py)."""
    queues = ServiceQueues(check_service_name(service))
    for name in [queues.main, *(queues.retry(delay) for delay in retry_delays)]:
        channel = connection.channel()
        try:
            channel.queue_declare(name, passive=True)
        except ChannelClosedByBroker:  # 404: not declared (yet)
            return False
        finally:
            if channel.is_open:
                channel.close()
    return True


def declare_consumer_topology_at(
    amqp_url: str, service: str, event_types: Iterable[str], retry_delays: Sequence[float]
) -> ServiceQueues:
    """Declare a consuming service's topology over a connection of its own, then close it.

    ``<service> migrate`` does this before any service starts, so that an event published
    at start-up (identity's first admin) already finds every consumer's queue.
    """
    from chassis.messaging.connection import close_quietly, connect

    connection = connect(amqp_url, name=f"{service}-migrate")
    try:
        return declare_consumer_topology(connection.channel(), service, event_types, retry_delays)
    finally:
        close_quietly(connection)
