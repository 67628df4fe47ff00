"""Booking's events reach subscribers as signed Standard Webhooks, through real HTTP receivers
that verify the signature, also when a receiver fails first or hangs past the time limit."""

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from chassis.messaging import ProcessedEvent
from chassis.testkit.outside import HANG, TRICKLE, TRICKLE_HEADERS
from notification.adapters import webhook_worker
from notification.models import WebhookDelivery, WebhookSubscription
from notification.services.deliveries import record_attempt
from notification.services.subscriptions import update_subscription


def verified(request, secret: str) -> dict:
    """The body of a received delivery, after checking its signature as a receiver would."""
    return Webhook(secret).verify(request.body, request.headers)


def test_a_booking_is_delivered_signed_to_its_subscribers_only(
    start_app, webhooks, receiver, events, new_appointment, wait_until
):
    client = start_app()
    booked = webhooks.subscribe(client, receiver.url("/booked"), ["appointment.booked"])
    everything = webhooks.subscribe(client, receiver.url("/all"), ["*"])
    other = webhooks.subscribe(client, receiver.url("/cancelled"), ["appointment.cancelled"])
    appointment = new_appointment()

    envelope = events.booked(appointment)

    wait_until(lambda: len(receiver.requests("/booked")) == 1 and len(receiver.requests("/all")) == 1)
    [request] = receiver.requests("/booked")
    body = verified(request, booked["secret"])
    assert body["type"] == "appointment.booked"
    assert body["timestamp"] == envelope["occurred_at"]
    sent = body["data"]["appointment"]
    assert sent["id"] == appointment["id"]
    assert sent["status"] == "pending"
    assert sent["patient_name"] == "Pat Patient"
    assert sent["doctor_name"] == "Dora Doctor"
    assert request.headers["webhook-id"].startswith("msg_")
    assert request.headers["content-type"] == "application/json"
    # Signed with each subscription's own secret: another's does not verify it.
    with pytest.raises(WebhookVerificationError):
        Webhook(everything["secret"]).verify(request.body, request.headers)
    [delivery] = webhooks.wait_for_deliveries(client, booked["id"], "delivered")
    assert delivery["attempts"] == 1
    assert delivery["last_status_code"] == 200
    assert delivery["webhook_id_header"] == request.headers["webhook-id"]
    assert webhooks.deliveries(client, other["id"]) == []


def test_new_deliveries_go_out_at_once_not_at_the_next_poll(
    start_app, webhooks, receiver, events, new_appointment, wait_until
):
    # A poll far away and one thread: the consumer's commit wakes the worker, and each attempt
    # that ends with deliveries waiting wakes it again, so all three arrive long before the poll.
    client = start_app(delivery_poll_seconds=30, webhook_concurrency=1)
    webhooks.subscribe(client, receiver.url("/booked"), ["appointment.booked"])
    for _ in range(3):
        events.booked(new_appointment())
    wait_until(lambda: len(receiver.requests("/booked")) == 3, timeout=10, what="three webhooks")


def test_events_nobody_subscribed_to_leave_the_webhook_worker_asleep(
    start_app, webhooks, receiver, events, new_appointment, wait_until, db, monkeypatch
):
    # Each claim is a transaction: waking the worker for every event (as an ORM rowcount of -1
    # once did) spent a claim per booking for nothing.
    claims: list[int] = []
    claim = webhook_worker.claim_deliveries

    def counted_claim(*args, **kwargs):
        claimed = claim(*args, **kwargs)
        claims.append(len(claimed))
        return claimed

    monkeypatch.setattr(webhook_worker, "claim_deliveries", counted_claim)
    client = start_app(delivery_poll_seconds=30)
    wait_until(lambda: claims, what="the worker's first step")
    before = len(claims)
    ignored = [events.booked(new_appointment())["event_id"] for _ in range(5)]
    wait_until(lambda: handled(db, ignored), what="the five events handled")
    assert len(claims) == before, "an event without subscribers woke the webhook worker"

    webhooks.subscribe(client, receiver.url("/booked"), ["appointment.booked"])
    events.booked(new_appointment())
    wait_until(lambda: len(receiver.requests("/booked")) == 1, timeout=10, what="the subscribed webhook")
    assert 1 in claims


def handled(db, event_ids: list[str]) -> bool:
    with db.transaction() as session:
        found = session.scalar(
            select(func.count())
            .select_from(ProcessedEvent)
            .where(ProcessedEvent.event_id.in_([uuid.UUID(event_id) for event_id in event_ids]))
        )
    return found == len(event_ids)


def test_a_receiver_that_fails_first_gets_the_same_delivery_again_until_it_answers_2xx(
    start_app, webhooks, receiver, events, new_appointment, wait_until
):
    client = start_app()
    receiver.script("/flaky", [500, 503])
    hook = webhooks.subscribe(client, receiver.url("/flaky"), ["appointment.booked"])

    events.booked(new_appointment())

    [delivery] = webhooks.wait_for_deliveries(client, hook["id"], "delivered")
    requests = receiver.requests("/flaky")
    assert [r.answer for r in requests] == [500, 503, 200]
    assert delivery["attempts"] == 3
    assert len({r.headers["webhook-id"] for r in requests}) == 1
    assert len({r.body for r in requests}) == 1
    for request in requests:
        verified(request, hook["secret"])


def test_a_receiver_that_hangs_past_the_time_limit_is_retried(
    start_app, webhooks, receiver, events, new_appointment, wait_until
):
    client = start_app()  # a 2 s limit here (10 s by default)
    receiver.script("/slow", [HANG])
    hook = webhooks.subscribe(client, receiver.url("/slow"), ["*"])

    events.booked(new_appointment())

    def first_failed() -> dict | None:
        found = webhooks.deliveries(client, hook["id"])
        return found[0] if found and found[0]["last_error"] else None

    failed_once = wait_until(first_failed, timeout=30)
    assert "no answer within 2 s" in failed_once["last_error"]
    [delivery] = webhooks.wait_for_deliveries(client, hook["id"], "delivered")
    assert delivery["attempts"] == 2
    assert [r.answer for r in receiver.requests("/slow")] == [HANG, 200]


def test_a_receiver_that_answers_2xx_but_never_finishes_its_body_has_its_delivery_delivered(
    start_app, webhooks, receiver, events, new_appointment, wait_until
):
    # The status decides; the answer's body is read for an excerpt only within the time limit
    # (2 s here), so a receiver trickling it holds the attempt no longer than that.
    client = start_app()
    receiver.script("/trickle", [TRICKLE])
    hook = webhooks.subscribe(client, receiver.url("/trickle"), ["*"])

    events.booked(new_appointment())

    [delivery] = webhooks.wait_for_deliveries(client, hook["id"], "delivered")
    assert delivery["attempts"] == 1
    assert delivery["last_error"] is None
    assert [r.answer for r in receiver.requests("/trickle")] == [TRICKLE]


def test_a_receiver_that_trickles_its_headers_is_cut_off_at_the_time_limit_and_retried(
    start_app, webhooks, receiver, events, new_appointment, wait_until
):
    # Each byte of the status line and headers comes within the time limit (2 s here), but the
    # answer never does: the attempt as a whole ends at the limit, as a slow answer's does,
    # instead of holding its worker (and outliving its lease) for as long as the receiver likes.
    client = start_app()
    receiver.script("/dribble", [TRICKLE_HEADERS])
    hook = webhooks.subscribe(client, receiver.url("/dribble"), ["*"])

    events.booked(new_appointment())

    [delivery] = webhooks.wait_for_deliveries(client, hook["id"], "delivered")
    assert delivery["attempts"] == 2
    [first, second] = receiver.requests("/dribble")
    assert (first.answer, second.answer) == (TRICKLE_HEADERS, 200)
    # The retry came after the cut-off and the retry delay, long before the receiver would
    # have stopped trickling (hang_seconds).
    assert second.received_at - first.received_at < receiver.hang_seconds


def test_a_delivery_that_keeps_failing_is_failed_after_its_schedule_and_can_be_redelivered(
    start_app, webhooks, receiver, events, new_appointment, wait_until
):
    client = start_app()  # 3 retries here
    receiver.script("/down", [500] * 4)
    hook = webhooks.subscribe(client, receiver.url("/down"), ["appointment.booked"])
    events.booked(new_appointment())

    [failed] = webhooks.wait_for_deliveries(client, hook["id"], "failed")
    assert failed["attempts"] == 4
    assert failed["last_status_code"] == 500
    assert failed["response_excerpt"] == "receiver says no"

    again = client.post(
        f"/api/webhooks/{hook['id']}/deliveries/{failed['id']}/redeliver/", headers=webhooks.headers
    )
    assert again.status_code == 202
    [delivered] = webhooks.wait_for_deliveries(client, hook["id"], "delivered")
    assert delivered["attempts"] == 5
    assert len({r.headers["webhook-id"] for r in receiver.requests("/down")}) == 1


def test_every_appointment_event_becomes_its_webhook_type(
    start_app, webhooks, receiver, events, new_appointment, wait_until
):
    client = start_app()
    hook = webhooks.subscribe(client, receiver.url("/all"), ["*"])
    appointment = {**new_appointment(), "reason": "Chest pain when climbing stairs"}

    events.booked(appointment)
    events.status_changed(appointment, "pending", "confirmed")
    moved = events.rescheduled(appointment, appointment["start_time"] + timedelta(days=1), status="confirmed")
    events.cancelled(moved, previous="confirmed", reason="feeling better")

    wait_until(lambda: len(receiver.requests("/all")) == 4)
    bodies = [verified(r, hook["secret"]) for r in receiver.requests("/all")]
    assert sorted(b["type"] for b in bodies) == sorted(
        ["appointment.booked", "appointment.confirmed", "appointment.rescheduled", "appointment.cancelled"]
    )
    rescheduled = next(b for b in bodies if b["type"] == "appointment.rescheduled")
    assert rescheduled["data"]["previous"]["timeslot_id"] == appointment["timeslot_id"]
    assert rescheduled["data"]["appointment"]["timeslot_id"] == moved["timeslot_id"]
    cancelled = next(b for b in bodies if b["type"] == "appointment.cancelled")
    assert cancelled["data"]["appointment"]["cancellation_reason"] == "feeling better"
    assert {b["data"]["appointment"]["reason"] for b in bodies} == {"Chest pain when climbing stairs"}


def test_an_event_published_before_booking_sent_the_reason_gives_an_empty_one(
    start_app, webhooks, receiver, events, new_appointment, wait_until
):
    client = start_app()
    hook = webhooks.subscribe(client, receiver.url("/old"), ["appointment.booked"])
    appointment = new_appointment()
    assert "reason" not in appointment

    events.booked(appointment)

    wait_until(lambda: len(receiver.requests("/old")) == 1)
    [body] = [verified(r, hook["secret"]) for r in receiver.requests("/old")]
    assert body["data"]["appointment"]["reason"] == ""
    assert body["data"]["appointment"]["id"] == appointment["id"]


def test_waitlist_offers_are_delivered_with_the_entry(
    start_app, webhooks, receiver, events, people, wait_until
):
    client = start_app()
    hook = webhooks.subscribe(client, receiver.url("/offers"), ["waitlist.offered"])
    entry = {
        "id": 41,
        "doctor_id": people["doctor"],
        "date_from": "2026-12-10",
        "date_to": "2026-12-12",
        "created_at": "2026-12-01T09:00:00Z",
        "offer": {
            "timeslot_id": 77,
            "start_time": "2026-12-11T09:00:00Z",
            "end_time": "2026-12-11T09:30:00Z",
            "expires_at": "2026-12-02T10:00:00Z",
        },
    }

    events.publish("booking.waitlist.offered", {"entry": entry, "patient_id": people["patient"]})

    wait_until(lambda: receiver.requests("/offers"))
    body = verified(receiver.requests("/offers")[0], hook["secret"])
    assert body["type"] == "waitlist.offered"
    assert body["data"] == {"entry": entry}


def test_a_target_that_turns_private_is_refused_at_delivery(
    start_app, webhooks, receiver, events, new_appointment, wait_until, db
):
    client = start_app()
    hook = webhooks.subscribe(client, receiver.url("/inside"), ["*"])
    start_app.stop(client)  # the next process does not allow private targets
    guarded = start_app(webhook_allow_private_targets=False)

    events.booked(new_appointment())

    [failed] = webhooks.wait_for_deliveries(guarded, hook["id"], "failed")
    assert "refused" in failed["last_error"]
    assert receiver.requests("/inside") == []


def test_a_paused_subscription_gets_its_deliveries_once_it_is_active_again(
    start_app, webhooks, receiver, events, new_appointment, wait_until
):
    client = start_app()
    hook = webhooks.subscribe(client, receiver.url("/paused"), ["*"])
    client.patch(f"/api/webhooks/{hook['id']}/", json={"is_active": False}, headers=webhooks.headers)

    events.booked(new_appointment())
    webhooks.subscribe(client, receiver.url("/barrier"), ["*"])
    events.booked(new_appointment())
    wait_until(lambda: receiver.requests("/barrier"))
    assert receiver.requests("/paused") == []

    client.patch(f"/api/webhooks/{hook['id']}/", json={"is_active": True}, headers=webhooks.headers)
    # Both bookings, the one made while it was paused too.
    wait_until(lambda: len(receiver.requests("/paused")) == 2)
    assert {json.loads(r.body)["type"] for r in receiver.requests("/paused")} == {"appointment.booked"}


def test_a_paused_subscriptions_deliveries_are_not_due_until_it_is_resumed(
    start_app, webhooks, receiver, events, new_appointment, wait_until
):
    # Not due (next_attempt_at null) while paused: the workers' claim, which walks the due
    # deliveries in due order, never meets them; resuming makes them due at once.
    client = start_app(delivery_retry_delays=(60.0,))
    receiver.script("/resumed", [500])
    hook = webhooks.subscribe(client, receiver.url("/resumed"), ["appointment.booked"])
    events.booked(new_appointment())
    [retrying] = webhooks.wait_for_deliveries(client, hook["id"], "pending")
    # Its outcome written (an attempt in flight is left to its worker by a pause).
    wait_until(lambda: webhooks.deliveries(client, hook["id"])[0]["last_status_code"] == 500)
    path = f"/api/webhooks/{hook['id']}/"

    client.patch(path, json={"is_active": False}, headers=webhooks.headers)
    events.booked(new_appointment())

    waiting = webhooks.wait_for_deliveries(client, hook["id"], "pending", "pending")
    assert [d["next_attempt_at"] for d in waiting] == [None, None]
    client.patch(path, json={"is_active": True}, headers=webhooks.headers)
    # Both at once, the one that failed first too (its retry was a minute away).
    wait_until(lambda: len(receiver.requests("/resumed")) == 3, timeout=10)
    webhooks.wait_for_deliveries(client, hook["id"], "delivered", "delivered")


def stored_delivery(db, *, attempts: int, next_attempt_at: Any, is_active: bool = True) -> tuple[int, int]:
    """A subscription (to an address nothing calls) and one delivery of it, written as given:
    their ids. ``next_attempt_at`` in the future or None keeps the app's worker off it."""
    with db.transaction() as session:
        hook = WebhookSubscription(
            url="https://example.test/hook", event_types=["*"], secret="s" * 40, is_active=is_active
        )
        session.add(hook)
        session.flush()
        delivery = WebhookDelivery(
            subscription_id=hook.id,
            event_id=uuid.uuid4(),
            event_type="appointment.booked",
            webhook_id=f"msg_{uuid.uuid4().hex}",
            payload={},
            attempts=attempts,
            next_attempt_at=next_attempt_at,
        )
        session.add(delivery)
        session.flush()
        return hook.id, delivery.id


def test_an_attempt_that_fails_while_its_subscription_is_paused_leaves_it_not_due(db, start_app):
    start_app()
    # Paused while its attempt ran (next_attempt_at null).
    _, delivery_id = stored_delivery(db, attempts=1, next_attempt_at=None, is_active=False)

    status = record_attempt(
        db,
        delivery_id,
        attempt=1,
        status_code=500,
        error="500",
        response_excerpt=None,
        retry_delays=[0.1, 0.1],
    )

    assert status == "pending"
    with db.transaction() as session:
        stored = session.get(WebhookDelivery, delivery_id)
        assert (stored.failures, stored.next_attempt_at) == (1, None)


def test_pausing_and_resuming_leaves_an_attempt_in_flight_to_its_worker(db, start_app):
    # A claimed delivery stays pending, due again only when its claim runs out: made due by a
    # resume, a second worker would send it while the first still is.
    start_app()
    # Claimed (as claim_deliveries does: attempts counted, due at the claim's end), no outcome yet.
    claimed_until = datetime.now(UTC) + timedelta(minutes=5)
    hook_id, delivery_id = stored_delivery(db, attempts=1, next_attempt_at=claimed_until)

    for active in (False, True):
        with db.sessions() as session:
            update_subscription(session, hook_id, {"is_active": active}, allow_private=True)

    with db.transaction() as session:
        assert session.get(WebhookDelivery, delivery_id).next_attempt_at == claimed_until


def test_a_payload_dates_the_appointment_by_its_booking_and_its_latest_change(
    start_app, webhooks, receiver, events, new_appointment, wait_until
):
    client = start_app()
    hook = webhooks.subscribe(client, receiver.url("/dated"), ["appointment.booked", "appointment.confirmed"])
    appointment = new_appointment()

    booked = events.booked(appointment)
    confirmed = events.status_changed(appointment, "pending", "confirmed")

    wait_until(lambda: len(receiver.requests("/dated")) == 2)
    bodies = {
        b["type"]: b["data"]["appointment"]
        for b in (verified(r, hook["secret"]) for r in receiver.requests("/dated"))
    }
    booked_at, confirmed_at = _instant(booked["occurred_at"]), _instant(confirmed["occurred_at"])
    assert _instant(bodies["appointment.booked"]["created_at"]) == booked_at
    assert _instant(bodies["appointment.booked"]["updated_at"]) == booked_at
    assert _instant(bodies["appointment.confirmed"]["created_at"]) == booked_at
    assert _instant(bodies["appointment.confirmed"]["updated_at"]) == confirmed_at


def _instant(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_the_outcome_of_an_attempt_that_outlasted_its_claim_changes_nothing(db, start_app):
    # Attempt 1 ran past its claim, the delivery was claimed again and attempt 2 delivered it;
    # attempt 1's failure, recorded last, must not undo that (or fail the delivery).
    start_app()
    _, delivery_id = stored_delivery(db, attempts=2, next_attempt_at=func.now() + timedelta(hours=1))
    outcome = {"response_excerpt": None, "retry_delays": [0.1]}

    delivered = record_attempt(db, delivery_id, attempt=2, status_code=204, error=None, **outcome)
    late = record_attempt(db, delivery_id, attempt=1, status_code=None, error="no answer", **outcome)

    assert delivered == late == "delivered"
    with db.transaction() as session:
        stored = session.get(WebhookDelivery, delivery_id)
        assert (stored.status, stored.failures, stored.last_status_code) == ("delivered", 0, 204)
