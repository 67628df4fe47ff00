"""Inspecting and replaying dead letters, through the API and the command line."""

from __future__ import annotations

import io
import json

from chassis.messaging import DeadLetters, Envelope, EventConsumer, deadletters_cli


def test_a_dead_letter_is_listed_and_replayed_to_the_fixed_handler(
    record_effect, db, broker, amqp_url, service, event_type, count_effects, wait_until
):
    broken = True

    def handler(session, envelope):
        if broken:
            raise ValueError("no such doctor")
        record_effect(session, envelope)

    consumer = EventConsumer(service, db, amqp_url, {event_type: handler}, retry_delays=(0.2,))
    consumer.start()
    assert consumer.wait_ready(15)
    dead_letters = DeadLetters(amqp_url, service)
    try:
        first = Envelope.new(event_type, {"note": "first"}, producer="test")
        second = Envelope.new(event_type, {"note": "second"}, producer="test")
        broker.publish(event_type, first)
        broker.publish(event_type, second)
        letters = wait_until(lambda: (found := dead_letters.list()) and len(found) == 2 and found)
        assert {letter["event_id"] for letter in letters} == {str(first.event_id), str(second.event_id)}
        assert all(letter["error"] == "ValueError: no such doctor" for letter in letters)
        assert all(letter["attempts"] == 2 for letter in letters)
        assert all(letter["event_type"] is None or letter["event_type"] == event_type for letter in letters)

        out = io.StringIO()
        assert deadletters_cli(service, ["--amqp-url", amqp_url, "list"], out=out) == 0
        listed = [json.loads(line) for line in out.getvalue().splitlines()]
        assert {item["event_id"] for item in listed} == {str(first.event_id), str(second.event_id)}
        assert listed[0]["body"]["event_type"] == event_type

        broken = False
        out = io.StringIO()
        assert (
            deadletters_cli(
                service, ["--amqp-url", amqp_url, "replay", "--event-id", str(first.event_id)], out=out
            )
            == 0
        )
        assert out.getvalue() == "1\n"
        wait_until(lambda: count_effects(first) == 1)
        assert [letter["event_id"] for letter in dead_letters.list()] == [str(second.event_id)]

        assert dead_letters.replay() == 1
        wait_until(lambda: count_effects(second) == 1)
        assert dead_letters.list() == []
        assert count_effects(first) == 1
    finally:
        consumer.stop()


def test_listing_the_dead_letters_of_a_service_without_any_returns_nothing(amqp_url, service):
    assert DeadLetters(amqp_url, service).list() == []
    assert DeadLetters(amqp_url, service).replay() == 0
