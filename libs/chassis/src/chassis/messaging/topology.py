"""Exchanges and queues, declared idempotently by whoever uses them.

Every declarer must pass identical arguments, or RabbitMQ closes the channel with
406 PRECONDITION_FAILED; so each declaration lives here and nowhere else.

- ``clinic.events``: topic exchange, routing key = event type; events no queue is
  bound to go to its alternate exchange ``clinic.unrouted`` (fanout) and are kept
  in the queue ``clinic.unrouted`` instead of being dropped at once: the last
  ``UNROUTED_MAX_LENGTH`` of them (the oldest go first; types nobody consumes end there).
- ``<service>.events``: the consuming service's quorum queue, bound to the types it
  handles; past ``x-delivery-limit`` deliveries (a message that keeps crashing the
  consumer) the broker dead-letters it to ``<service>.events.dlq``.
- ``<service>.events.retry.<ms>ms``: one queue per retry delay; a message waits there
  for its TTL and then returns through the default exchange to ``<service>.events``
  alone, so a retry never reaches other services again.
- ``<service>.events.dlq``: messages that failed every retry, to inspect and replay.
- ``<service>.requeue``: a direct exchange to which ``<service>.events``, its retry queues
  and its dead-letter queue are bound under their own names. The consumer moves a failed
  message to a retry or dead-letter queue, and ``dead-letters replay`` sends it back, through
  it: never through the default exchange, which reaches every queue of the vhost.

Who declares: ``<service> migrate`` with the broker's administrator (``AMQP_ADMIN_URL``). A
service's own user may not declare anything (least privilege: it could delete the shared
exchange); at run time the relay and the consumer check passively that everything exists
and declare only what is missing, which an administrator's connection (tests, a single-user
set-up) may do and a service's own user is refused, with a message naming ``migrate``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import pika.exceptions
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

    @property
    def requeue_exchange(self) -> str:
        """The direct exchange that reaches this service's queues, each by its own name."""
        return f"{self.service}.requeue"

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


def declare_requeue_exchange(channel: BlockingChannel, service: str, retry_delays: Sequence[float]) -> str:
    """Declare ``<service>.requeue`` and bind the service's queues to it, each by its own name."""
    queues = ServiceQueues(check_service_name(service))
    channel.exchange_declare(queues.requeue_exchange, "direct", durable=True)
    for name in (queues.main, queues.dlq, *(queues.retry(d) for d in retry_delays)):
        channel.queue_bind(name, queues.requeue_exchange, routing_key=name)
    return queues.requeue_exchange


def declare_consumer_topology(
    channel: BlockingChannel, service: str, event_types: Iterable[str], retry_delays: Sequence[float]
) -> ServiceQueues:
    """Everything a consuming service needs: exchanges, its queues, and one binding per event type.

    The retry queues come after the event bindings (then only the ``<service>.requeue``
    exchange, which binds them): once they exist, every event the service consumes is routed
    to it (what ``consumer_topology_declared`` checks for a publisher).
    """
    declare_exchanges(channel)
    queues = declare_service_queues(channel, service)
    for event_type in sorted(set(event_types)):
        channel.queue_bind(queues.main, EXCHANGE, routing_key=event_type)
    declare_retry_queues(channel, service, retry_delays)
    declare_requeue_exchange(channel, service, retry_delays)  # binds the retry queues too
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


class TopologyMissing(Exception):
    """Exchanges or queues are missing and this broker user may not declare them."""


def _all_exist(connection: BlockingConnection, exchanges: Iterable[str], queues: Iterable[str]) -> bool:
    """Whether every exchange and queue exists (passive declarations need no permission)."""
    channel = connection.channel()
    try:
        for exchange in exchanges:
            channel.exchange_declare(exchange, passive=True)
        for queue in queues:
            channel.queue_declare(queue, passive=True)
    except pika.exceptions.ChannelClosedByBroker as exc:
        if exc.reply_code == 404:  # NOT_FOUND closes the channel; the connection stays usable
            return False
        raise
    channel.close()
    return True


def _declare_missing(
    connection: BlockingConnection, declare: Callable[[BlockingChannel], object], who: str
) -> None:
    channel = connection.channel()
    try:
        declare(channel)
    except pika.exceptions.ChannelClosedByBroker as exc:
        if exc.reply_code == 403:
            raise TopologyMissing(
                f"the broker's exchanges or queues for {who} are missing and its broker user may not "
                f"declare them: run `{who} migrate` (with AMQP_ADMIN_URL) first"
            ) from exc
        raise
    channel.close()


def ensure_exchanges(connection: BlockingConnection, service: str = "<service>") -> None:
    """Make sure ``clinic.events`` (and its alternate exchange) exist; declare them only if missing."""
    if not _all_exist(connection, (UNROUTED_EXCHANGE, EXCHANGE), (UNROUTED_QUEUE,)):
        _declare_missing(connection, declare_exchanges, service)


def ensure_consumer_topology(
    connection: BlockingConnection, service: str, event_types: Iterable[str], retry_delays: Sequence[float]
) -> ServiceQueues:
    """Make sure a consuming service's exchanges and queues exist; declare everything if one is missing.

    When they all exist the bindings are taken as ``<service> migrate`` left them: binding
    needs a permission on ``clinic.events`` that a service's own user does not have.
    """
    queues = ServiceQueues(check_service_name(service))
    exchanges = (UNROUTED_EXCHANGE, EXCHANGE, queues.requeue_exchange)
    names = (queues.main, queues.dlq, *(queues.retry(d) for d in retry_delays))
    if not _all_exist(connection, exchanges, names):
        types = list(event_types)
        _declare_missing(
            connection,
            lambda channel: declare_consumer_topology(channel, service, types, retry_delays),
            service,
        )
    return queues


def declare_topology_at(
    amqp_url: str, service: str, event_types: Iterable[str] | None, retry_delays: Sequence[float]
) -> None:
    """Declare a service's topology over a connection of its own, then close it.

    ``<service> migrate`` does this as the broker's administrator before any service starts,
    so that an event published at start-up (identity's first admin) already finds every
    consumer's queue. A service that consumes nothing (``event_types`` None) needs only the
    exchanges it publishes to.
    """
    from chassis.messaging.connection import close_quietly, connect

    connection = connect(amqp_url, name=f"{service}-migrate")
    try:
        channel = connection.channel()
        if event_types is None:
            declare_exchanges(channel)
        else:
            declare_consumer_topology(channel, service, event_types, retry_delays)
    finally:
        close_quietly(connection)
