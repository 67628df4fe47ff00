"""The test kit's broker: what a suite reads of the events a service published, and its vhosts."""

from __future__ import annotations

import os
from contextlib import closing

import pika
import pytest

from chassis.messaging import Envelope
from chassis.testkit import RabbitVhosts


def test_envelopes_gives_the_first_matching_events_in_order_and_skips_the_others(broker):
    event_type = "kit.user.changed"
    queue = broker.bind_queue(event_type)
    for user_id, n in [(1, 1), (2, 1), (1, 2), (1, 3)]:
        broker.publish(event_type, Envelope.new(event_type, {"user_id": user_id, "n": n}, producer="kit"))

    first, second = broker.envelopes(queue, 2, user_id=1)

    assert [first["data"]["n"], second["data"]["n"]] == [1, 2]
    # The other user's event was consumed on the way; user 1's third is still there.
    [third] = broker.envelopes(queue, 5, timeout=0.5)
    assert third["data"] == {"user_id": 1, "n": 3}
    assert broker.envelopes(queue, 1, timeout=0.3) == []


def test_a_vhost_made_again_under_the_same_name_starts_empty(amqp_url, run_id):
    server = os.environ["TEST_AMQP_URL"]
    vhosts = RabbitVhosts(server)
    try:
        url = vhosts(f"clinic_test_{run_id}_again")
        with closing(pika.BlockingConnection(pika.URLParameters(url))) as connection:
            connection.channel().queue_declare("left-over", durable=True)
        # A run with the same id (CLINIC_TEST_RUN_ID) makes it again: nothing of the last one is left.
        assert vhosts(f"clinic_test_{run_id}_again") == url
        with (
            closing(pika.BlockingConnection(pika.URLParameters(url))) as connection,
            pytest.raises(pika.exceptions.ChannelClosedByBroker, match="NOT_FOUND"),
        ):
            connection.channel().queue_declare("left-over", passive=True)
    finally:
        vhosts.delete_all()
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        pika.BlockingConnection(pika.URLParameters(url))
