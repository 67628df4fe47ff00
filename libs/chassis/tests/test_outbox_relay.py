"""The outbox and its relay, against real PostgreSQL and RabbitMQ."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime

import pika
from sqlalchemy import select

from chassis.messaging import UNROUTED_QUEUE, Envelope, OutboxEvent, OutboxRelay, add_event
from chassis.observability import request_id_var


def test_an_event_added_in_a_rolled_back_transaction_is_never_published(db, broker, amqp_url, event_type):
    queue = broker.bind_queue(event_type)
    with db.sessions() as session:
        add_event(session, event_type, {"note": "never"}, producer="test")
        session.rollback()

    relay = OutboxRelay(db, amqp_url)
    try:
        assert relay.publish_pending() == 0
    finally:
        relay.close()
    assert broker.get(queue, timeout=0.3) == []


def test_a_committed_event_is_published_once_with_its_envelope_and_properties(
    db, broker, amqp_url, event_type
):
    queue = broker.bind_queue(event_type)
    doctor_id = uuid.uuid4()
    with db.transaction() as session:
        envelope = add_event(
            session,
            event_type,
            {"doctor_id": doctor_id, "at": datetime(2030, 1, 2, 9, 30, tzinfo=UTC)},
            producer="doctor",
            correlation_id="req-1",
        )

    relay = OutboxRelay(db, amqp_url)
    try:
        assert relay.publish_pending() == 1
        assert relay.publish_pending() == 0
    finally:
        relay.close()

    [message] = broker.get(queue)
    assert json.loads(message.body) == envelope.to_json()
    assert Envelope.from_json(json.loads(message.body)) == envelope
    assert envelope.data == {"doctor_id": str(doctor_id), "at": "2030-01-02T09:30:00+00:00"}
    assert message.routing_key == event_type
    props = message.properties
    assert props.message_id == str(envelope.event_id)
    assert props.type == event_type
    assert props.content_type == "application/json"
    assert props.delivery_mode == pika.DeliveryMode.Persistent.value
    assert props.correlation_id == "req-1"
    assert props.app_id == "doctor"
    assert broker.get(queue, timeout=0.3) == []
    with db.sessions() as session:
        row = session.get(OutboxEvent, envelope.event_id)
        assert row.published_at is not None
        assert row.attempts == 1
        assert row.payload == envelope.to_json()


def test_add_event_takes_the_correlation_id_from_the_current_request(db, event_type):
    token = request_id_var.set("request-42")
    try:
        with db.transaction() as session:
            envelope = add_event(session, event_type, {}, producer="test")
    finally:
        request_id_var.reset(token)
    assert envelope.correlation_id == "request-42"


def test_the_relay_wakes_up_on_commit_without_waiting_for_its_poll_interval(db, broker, amqp_url, event_type):
    queue = broker.bind_queue(event_type)
    relay = OutboxRelay(db, amqp_url, poll_interval=30.0)
    relay.start()
    try:
        assert relay.wait_ready(10)
        time.sleep(0.3)  # let the first pass finish: the relay now sleeps for up to 30 s
        committed = time.monotonic()
        with db.transaction() as session:
            add_event(session, event_type, {"note": "fast"}, producer="test")
        [_] = broker.get(queue, timeout=3)
        assert time.monotonic() - committed < 1.0
    finally:
        relay.stop()


def test_a_commit_succeeds_while_the_broker_is_down_and_its_event_is_delivered_once_afterwards(
    db, broker, amqp_url, tcp_proxy, event_type
):
    queue = broker.bind_queue(event_type)
    proxy = tcp_proxy(amqp_url)
    relay = OutboxRelay(db, proxy.url(amqp_url), poll_interval=0.5, max_backoff=0.5)
    relay.start()
    try:
        assert relay.wait_ready(10)
        proxy.cut()
        started = time.monotonic()
        with db.transaction() as session:
            envelope = add_event(session, event_type, {"note": "outage"}, producer="test")
        assert time.monotonic() - started < 0.5
        assert broker.get(queue, timeout=1.0) == []

        proxy.restore()
        [message] = broker.get(queue, timeout=10)
        assert message.properties.message_id == str(envelope.event_id)
        assert broker.get(queue, timeout=1.0) == []
    finally:
        relay.stop()


def test_two_relays_running_at_once_publish_each_of_200_events_exactly_once(db, broker, amqp_url, event_type):
    queue = broker.bind_queue(event_type)
    with db.transaction() as session:
        for n in range(100):
            add_event(session, event_type, {"n": n}, producer="test")
    relays = [OutboxRelay(db, amqp_url, batch_size=10, poll_interval=0.2) for _ in range(2)]
    for relay in relays:
        relay.start()
    try:
        for batch in range(10):  # more events while both relays are busy
            with db.transaction() as session:
                for n in range(10):
                    add_event(session, event_type, {"n": 100 + batch * 10 + n}, producer="test")
        messages = broker.get(queue, count=200, timeout=30)
        assert broker.get(queue, timeout=0.5) == []
    finally:
        for relay in relays:
            relay.stop()

    ids = [m.properties.message_id for m in messages]
    assert len(ids) == 200
    assert len(set(ids)) == 200
    assert sorted(json.loads(m.body)["data"]["n"] for m in messages) == list(range(200))
    assert sum(relay.published_total for relay in relays) == 200
    with db.sessions() as session:
        assert session.scalars(select(OutboxEvent).where(OutboxEvent.published_at.is_(None))).all() == []


def test_an_event_no_queue_is_bound_to_is_kept_in_clinic_unrouted(db, broker, amqp_url, event_type):
    with db.transaction() as session:
        envelope = add_event(session, event_type, {"note": "nobody listens"}, producer="test")
    relay = OutboxRelay(db, amqp_url)
    try:
        assert relay.publish_pending() == 1
    finally:
        relay.close()

    # Other tests' unbound events may be there too: look for ours.
    found = []
    while message := broker.get(UNROUTED_QUEUE, timeout=1.0):
        found += [m for m in message if m.properties.message_id == str(envelope.event_id)]
        if found:
            break
    [message] = found
    assert message.routing_key == event_type
    assert json.loads(message.body) == envelope.to_json()
