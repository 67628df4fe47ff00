"""The test kit's broker: what a suite reads of the events a service published."""

from __future__ import annotations

from chassis.messaging import Envelope


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
