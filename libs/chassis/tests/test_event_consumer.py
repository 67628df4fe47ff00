"""The consumer: inbox deduplication, retries, dead letters and outages, on real servers."""

from __future__ import annotations

import time

from chassis.db import Database
from chassis.messaging import DeadLetters, Envelope, EventConsumer


def start_consumer(service, db, amqp_url, handlers, **options) -> EventConsumer:
    options.setdefault("retry_delays", (0.2, 0.4))
    consumer = EventConsumer(service, db, amqp_url, handlers, **options)
    consumer.start()
    assert consumer.wait_ready(15)
    return consumer


def test_a_duplicate_delivery_has_its_effect_once(
    record_effect, db, broker, amqp_url, service, event_type, count_effects, wait_until
):
    consumer = start_consumer(service, db, amqp_url, {event_type: record_effect})
    try:
        envelope = Envelope.new(event_type, {"note": "twice"}, producer="test")
        broker.publish(event_type, envelope)
        broker.publish(event_type, envelope)
        # One consumer takes a queue in order: once the next event is done, both copies were handled.
        sentinel = Envelope.new(event_type, {"note": "after"}, producer="test")
        broker.publish(event_type, sentinel)
        wait_until(lambda: count_effects(sentinel) == 1)
        assert count_effects(envelope) == 1
        assert DeadLetters(amqp_url, service).list() == []
    finally:
        consumer.stop()


def test_a_handler_that_fails_twice_succeeds_on_a_retry(
    record_effect, db, broker, amqp_url, service, event_type, count_effects, wait_until
):
    calls = []

    def flaky(session, envelope):
        calls.append(envelope.event_id)
        if len(calls) <= 2:
            raise RuntimeError("the doctor's calendar is busy")
        record_effect(session, envelope)

    consumer = start_consumer(service, db, amqp_url, {event_type: flaky})
    try:
        envelope = Envelope.new(event_type, {"note": "third time lucky"}, producer="test")
        broker.publish(event_type, envelope)
        wait_until(lambda: count_effects(envelope) == 1)
        assert calls == [envelope.event_id] * 3
        assert DeadLetters(amqp_url, service).list() == []
    finally:
        consumer.stop()


def test_a_retry_goes_back_only_to_the_service_that_failed(
    record_effect, new_database, broker, amqp_url, event_type, count_effects, wait_until
):
    failing_db, healthy_db = Database(new_database()), Database(new_database())
    attempts = []

    def fails_once(session, envelope):
        attempts.append(envelope.event_id)
        if len(attempts) == 1:
            raise RuntimeError("transient")
        record_effect(session, envelope)

    consumers = [
        start_consumer("failing" + event_type[:8], failing_db, amqp_url, {event_type: fails_once}),
        start_consumer("healthy" + event_type[:8], healthy_db, amqp_url, {event_type: record_effect}),
    ]
    try:
        envelope = Envelope.new(event_type, {"note": "once each"}, producer="test")
        broker.publish(event_type, envelope)
        wait_until(lambda: count_effects(envelope, failing_db) == 1)
        time.sleep(0.3)
        assert count_effects(envelope, healthy_db) == 1
        assert len(attempts) == 2
    finally:
        for consumer in consumers:
            consumer.stop()
        failing_db.dispose()
        healthy_db.dispose()


def test_a_malformed_message_is_dead_lettered_after_its_retries_while_the_next_one_is_processed(
    record_effect, db, broker, amqp_url, service, event_type, count_effects, wait_until
):
    consumer = start_consumer(service, db, amqp_url, {event_type: record_effect})
    dead_letters = DeadLetters(amqp_url, service)
    try:
        broker.publish(event_type, b"this is not json", message_id="bad-1")
        good = Envelope.new(event_type, {"note": "fine"}, producer="test")
        broker.publish(event_type, good)
        wait_until(lambda: count_effects(good) == 1, timeout=0.5)  # not held up by the bad one's retries

        [letter] = wait_until(dead_letters.list)
        assert letter["event_id"] == "bad-1"
        assert letter["error"].startswith("malformed message")
        assert letter["attempts"] == 3
        assert letter["original_routing_key"] == event_type
        assert letter["body"] == "this is not json"
        assert dead_letters.list() == [letter]  # listing leaves it there
    finally:
        consumer.stop()


def test_an_event_this_version_has_no_handler_for_waits_for_one_that_has(
    record_effect, db, broker, amqp_url, service, event_type, count_effects, wait_until
):
    # A rolling upgrade: the new version's migration bound a new type to the queue while a
    # replica of the old version still consumes it. The old one must not ack the event away.
    new_type = event_type.replace(".happened", ".started")
    newer = {event_type: record_effect, new_type: record_effect}
    start_consumer(service, db, amqp_url, newer).stop()  # its topology: both types bound
    # Retries a second apart: if the old replica takes the event once more before it stops, the
    # next retry still comes soon, to the new one.
    retries = (1.0, 1.5, 2.0)
    older = start_consumer(service, db, amqp_url, {event_type: record_effect}, retry_delays=retries)
    envelope = Envelope.new(new_type, {"note": "from the new version"}, producer="test")
    try:
        broker.publish(new_type, envelope)
        sentinel = Envelope.new(event_type, {"note": "after it"}, producer="test")
        broker.publish(event_type, sentinel)
        wait_until(lambda: count_effects(sentinel) == 1)  # the old replica has seen the new type
    finally:
        older.stop()
    assert count_effects(envelope) == 0
    upgraded = start_consumer(service, db, amqp_url, newer, retry_delays=retries)
    try:
        wait_until(lambda: count_effects(envelope) == 1, timeout=30)  # its retry reached the new version
        assert DeadLetters(amqp_url, service).list() == []
    finally:
        upgraded.stop()


def test_the_consumer_does_not_spend_retries_while_the_database_is_down(
    record_effect, new_database, broker, amqp_url, tcp_proxy, service, event_type, count_effects, wait_until
):
    url = new_database()
    proxy = tcp_proxy(url)
    direct_db, proxied_db = Database(url), Database(proxy.url(url))
    consumer = start_consumer(
        service, proxied_db, amqp_url, {event_type: record_effect}, retry_delays=(0.2,), max_backoff=0.3
    )
    dead_letters = DeadLetters(amqp_url, service)
    try:
        proxy.cut()
        envelope = Envelope.new(event_type, {"note": "patience"}, producer="test")
        broker.publish(event_type, envelope)
        time.sleep(1.5)  # a spent retry would have dead-lettered it within 0.5 s
        assert dead_letters.list() == []
        assert count_effects(envelope, direct_db) == 0

        proxy.restore()
        wait_until(lambda: count_effects(envelope, direct_db) == 1)
        assert dead_letters.list() == []
    finally:
        consumer.stop()
        direct_db.dispose()
        proxied_db.dispose()


def test_the_consumer_reconnects_after_losing_the_broker(
    record_effect, db, broker, amqp_url, tcp_proxy, service, event_type, count_effects, wait_until
):
    proxy = tcp_proxy(amqp_url)
    consumer = start_consumer(service, db, proxy.url(amqp_url), {event_type: record_effect}, max_backoff=0.3)
    try:
        proxy.cut()
        envelope = Envelope.new(event_type, {"note": "after the outage"}, producer="test")
        broker.publish(event_type, envelope)
        time.sleep(0.5)
        proxy.restore()
        wait_until(lambda: count_effects(envelope) == 1)
    finally:
        consumer.stop()
