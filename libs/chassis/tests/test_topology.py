"""A consumer's topology is complete once its retry queues exist: publishers wait for that."""

from __future__ import annotations

from chassis.messaging.connection import close_quietly, connect
from chassis.messaging.topology import (
    consumer_topology_declared,
    declare_consumer_topology,
    declare_topology_at,
)

DELAYS = (1.0, 5.0)


class RecordingChannel:
    """A real channel that notes the order of its declarations and bindings."""

    def __init__(self, channel) -> None:
        self.channel = channel
        self.calls: list[tuple[str, str]] = []

    def queue_declare(self, queue, **kwargs):
        self.calls.append(("declare", queue))
        return self.channel.queue_declare(queue, **kwargs)

    def queue_bind(self, queue, exchange, **kwargs):
        self.calls.append(("bind", exchange))
        return self.channel.queue_bind(queue, exchange, **kwargs)

    def __getattr__(self, name):
        return getattr(self.channel, name)


def test_the_retry_queues_are_declared_after_every_binding(amqp_url, service, event_type):
    connection = connect(amqp_url, name="test-topology")
    try:
        channel = RecordingChannel(connection.channel())
        declare_consumer_topology(channel, service, [event_type, f"{event_type}.too"], DELAYS)
    finally:
        close_quietly(connection)
    # The events' bindings; the <service>.requeue exchange binds the retry queues, after them.
    last_bind = max(i for i, call in enumerate(channel.calls) if call == ("bind", "clinic.events"))
    retries = [i for i, (kind, name) in enumerate(channel.calls) if ".retry." in name]
    assert retries and min(retries) > last_bind, channel.calls


def test_the_topology_counts_as_declared_only_once_it_is(amqp_url, service, event_type):
    connection = connect(amqp_url, name="test-topology")
    try:
        assert not consumer_topology_declared(connection, service, DELAYS)
        declare_topology_at(amqp_url, service, [event_type], DELAYS[:1])
        assert not consumer_topology_declared(connection, service, DELAYS)  # one retry queue missing
        declare_topology_at(amqp_url, service, [event_type], DELAYS)
        assert consumer_topology_declared(connection, service, DELAYS)
    finally:
        close_quietly(connection)
