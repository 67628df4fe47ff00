"""Running the relay and the consumer for the lifetime of a service's app."""

from __future__ import annotations

from contextlib import ExitStack

from fastapi import FastAPI

from chassis.messaging import add_event, messaging_hooks


def test_messaging_hooks_carry_an_event_from_the_outbox_to_a_handler_while_the_app_runs(
    record_effect, db, amqp_url, service, event_type, count_effects, wait_until
):
    app = FastAPI()
    hooks = messaging_hooks(service, db, amqp_url, {event_type: record_effect}, retry_delays=(0.2,))
    assert len(hooks) == 2
    with ExitStack() as stack:
        for hook in hooks:
            stack.enter_context(hook(app))
        assert app.state.outbox_relay.wait_ready(10)
        assert app.state.event_consumer.wait_ready(15)
        with db.transaction() as session:
            envelope = add_event(session, event_type, {"note": "round trip"}, producer=service)
        wait_until(lambda: count_effects(envelope) == 1)
    assert not app.state.outbox_relay.wait_ready(0)
    assert not app.state.event_consumer.wait_ready(0)


def test_messaging_hooks_give_only_the_relay_without_handlers_and_nothing_when_disabled(
    db, amqp_url, service
):
    assert len(messaging_hooks(service, db, amqp_url)) == 1
    assert messaging_hooks(service, db, amqp_url, {"a.b": lambda s, e: None}, enabled=False) == []
