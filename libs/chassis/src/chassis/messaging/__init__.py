"""Reliable messaging: transactional outbox, relay, idempotent consumer, retries and dead letters.

Producers call ``add_event(session, ...)`` inside the transaction of their change;
``OutboxRelay`` publishes committed events to the ``clinic.events`` topic exchange.
Consumers register ``handler(session, envelope)`` functions with ``EventConsumer``,
which runs each in the transaction that records the event in the inbox.
``messaging_hooks`` wires both into a service's app; ``DeadLetters`` inspects and
replays what failed. See ``topology`` for the exchanges and queues.
"""

from chassis.messaging.consumer import DEFAULT_RETRY_DELAYS, EventConsumer, Handler
from chassis.messaging.deadletters import DeadLetters, deadletters_cli
from chassis.messaging.envelope import Envelope
from chassis.messaging.hooks import messaging_hooks
from chassis.messaging.migration_ops import create_messaging_tables, drop_messaging_tables
from chassis.messaging.outbox import NOTIFY_CHANNEL, OutboxEvent, ProcessedEvent, add_event
from chassis.messaging.relay import OutboxRelay
from chassis.messaging.retention import (
    RetentionJob,
    messaging_retention_tasks,
    purge_processed_events,
    purge_published_events,
    retention_hook,
    service_retention_hooks,
)
from chassis.messaging.topology import (
    EXCHANGE,
    UNROUTED_EXCHANGE,
    UNROUTED_QUEUE,
    ServiceQueues,
    declare_exchanges,
)

__all__ = [
    "DEFAULT_RETRY_DELAYS",
    "EXCHANGE",
    "NOTIFY_CHANNEL",
    "UNROUTED_EXCHANGE",
    "UNROUTED_QUEUE",
    "DeadLetters",
    "Envelope",
    "EventConsumer",
    "Handler",
    "OutboxEvent",
    "OutboxRelay",
    "ProcessedEvent",
    "RetentionJob",
    "ServiceQueues",
    "add_event",
    "create_messaging_tables",
    "deadletters_cli",
    "declare_exchanges",
    "drop_messaging_tables",
    "messaging_hooks",
    "messaging_retention_tasks",
    "purge_processed_events",
    "purge_published_events",
    "retention_hook",
    "service_retention_hooks",
]
