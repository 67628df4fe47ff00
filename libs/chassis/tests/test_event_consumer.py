"""The consumer: inbox deduplication, retries, dead letters and outages, on real servers."""

from __future__ import annotations

import logging
import time
import uuid

from opentelemetry import trace
from sqlalchemy import distinct, func, literal_column, select

from chassis.db import Database
from chassis.messaging import DeadLetters, Envelope, EventConsumer
from chassis.messaging.outbox import ProcessedEvent
from chassis.observability import request_id_var


def start_consumer(service, db, amqp_url, handlers, **options) -> EventConsumer:
    options.setdefault("retry_delays", (0.2, 0.4))
    consumer = EventConsumer(service, db, amqp_url, handlers, **options)
    consumer.start()
    assert consumer.wait_ready(15)
    return consumer


def noted(event_type: str, notes: list[str]) -> list[Envelope]:
    return [Envelope.new(event_type, {"note": note}, producer="test") for note in notes]


def backlog(service, db, amqp_url, handlers, broker, envelopes: list[Envelope]) -> list[Envelope]:
    """``envelopes`` published while the service's consumer is stopped (its queue exists)."""
    start_consumer(service, db, amqp_url, handlers).stop()
    for envelope in envelopes:
        broker.publish(envelope.event_type, envelope)
    return envelopes


def inbox_transactions(db: Database, envelopes: list[Envelope]) -> int:
    """How many transactions recorded these events in the inbox (``xmin``: the inserting one)."""
    ids = [e.event_id for e in envelopes]
    with db.sessions() as session:
        return session.scalar(
            select(func.count(distinct(literal_column("xmin::text")))).where(ProcessedEvent.event_id.in_(ids))
        )


def processed_in_order(db: Database, envelopes: list[Envelope]) -> bool:
    """Whether ``processed_at`` follows the order the events were applied in, batch or not."""
    ids = [e.event_id for e in envelopes]
    with db.sessions() as session:
        inbox = select(ProcessedEvent.event_id, ProcessedEvent.processed_at)
        stamps = dict(session.execute(inbox.where(ProcessedEvent.event_id.in_(ids))).all())
    applied = [stamps[e.event_id] for e in envelopes]
    return applied == sorted(applied) and len(set(applied)) == len(applied)


def test_a_backlog_is_applied_in_order_in_shared_transactions(
    record_effect, db, broker, amqp_url, service, event_type, count_effects, effect_notes, wait_until
):
    notes = [f"event {n}" for n in range(12)]
    envelopes = backlog(service, db, amqp_url, {event_type: record_effect}, broker, noted(event_type, notes))
    consumer = start_consumer(service, db, amqp_url, {event_type: record_effect})
    try:
        wait_until(lambda: effect_notes() == notes)
        assert all(count_effects(envelope) == 1 for envelope in envelopes)
        # Messages that arrived together were applied in one transaction (one commit, one ack) ...
        assert inbox_transactions(db, envelopes) < len(envelopes)
        # ... and each still says when it was applied (a checker orders events of one appointment by it).
        assert processed_in_order(db, envelopes)
        assert DeadLetters(amqp_url, service).list() == []
    finally:
        consumer.stop()


class ContextOfLines(logging.Handler):
    """Each consumer line with the request id and trace id its process would log with it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[tuple[str, str | None, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        trace_id = format(trace.get_current_span().get_span_context().trace_id, "032x")
        self.lines.append((record.getMessage(), request_id_var.get(), trace_id))


def test_each_event_of_a_batch_is_logged_with_its_own_request_and_trace(
    record_effect, db, broker, amqp_url, service, event_type, effect_notes, wait_until
):
    handlers = {event_type: record_effect}
    envelopes = [
        Envelope.new(
            event_type,
            {"note": f"event {n}"},
            producer="test",
            correlation_id=f"request-{n}",
            traceparent=f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01",
        )
        for n in range(6)
    ]
    backlog(service, db, amqp_url, handlers, broker, envelopes)
    lines = ContextOfLines()
    logger = logging.getLogger("chassis.messaging.consumer")
    level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(lines)
    consumer = start_consumer(service, db, amqp_url, handlers)
    try:

        def handled() -> dict[str, tuple[str | None, str]]:
            found = {message: (request_id, trace_id) for message, request_id, trace_id in lines.lines}
            return found if all(line_of(e) in found for e in envelopes) else {}

        def line_of(envelope: Envelope) -> str:
            return f"{service} consumer: handled {event_type} {envelope.event_id}"

        found = wait_until(handled)
        for envelope in envelopes:
            assert found[line_of(envelope)] == (envelope.correlation_id, envelope.traceparent.split("-")[1])
        assert inbox_transactions(db, envelopes) < len(envelopes)  # they were batched
        assert len(effect_notes()) == len(envelopes)
    finally:
        consumer.stop()
        logger.removeHandler(lines)
        logger.setLevel(level)


def test_a_failing_handler_in_a_batch_applies_nothing_twice_and_only_it_is_retried(
    record_effect, db, broker, amqp_url, service, event_type, count_effects, effect_notes, wait_until
):
    attempts: dict[str, int] = {}

    def fails_once_on_the_third(session, envelope):
        note = envelope.data["note"]
        attempts[note] = attempts.get(note, 0) + 1
        if note == "event 3" and attempts[note] == 1:
            raise RuntimeError("the third one is not ready yet")
        record_effect(session, envelope)

    handlers = {event_type: fails_once_on_the_third}
    notes = [f"event {n}" for n in range(8)]
    envelopes = backlog(service, db, amqp_url, handlers, broker, noted(event_type, notes))
    consumer = start_consumer(service, db, amqp_url, handlers)
    try:
        wait_until(lambda: sorted(effect_notes()) == notes)
        time.sleep(0.3)  # a second application would show by now
        assert [count_effects(envelope) for envelope in envelopes] == [1] * len(envelopes)
        assert attempts["event 3"] == 2  # retried once, through its retry queue
        assert DeadLetters(amqp_url, service).list() == []
    finally:
        consumer.stop()


def test_a_message_that_always_fails_is_dead_lettered_and_the_rest_of_its_batch_is_applied(
    record_effect, db, broker, amqp_url, service, event_type, effect_notes, wait_until
):
    def refuses_the_poison(session, envelope):
        if envelope.data["note"] == "poison":
            raise RuntimeError("this one can never be applied")
        record_effect(session, envelope)

    handlers = {event_type: refuses_the_poison}
    notes = ["before", "poison", "after", "last"]
    envelopes = backlog(service, db, amqp_url, handlers, broker, noted(event_type, notes))
    consumer = start_consumer(service, db, amqp_url, handlers)
    dead_letters = DeadLetters(amqp_url, service)
    try:
        [letter] = wait_until(dead_letters.list)
        assert letter["event_id"] == str(envelopes[1].event_id)
        assert letter["error"] == "RuntimeError: this one can never be applied"
        assert effect_notes() == ["before", "after", "last"]
    finally:
        consumer.stop()


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
