"""The soak's outside world for notification-service, and its checker.

A webhook receiver (subscribed to every event type) and an SMTP server stand for the systems
and mailboxes outside. After the soak, ``check_notifications`` counts against booking's events
(its outbox keeps every event it published):

- each appointment event has exactly one delivery, ``delivered``, whose ``webhook-id`` reached
  the receiver with a valid signature (at least once: repeats are allowed, by design);
- each booked, confirmed, rescheduled or cancelled event that was the newest of its appointment
  when notification-service applied it has a mail to the patient and one to the doctor, each
  ``sent`` (``skipped`` for a deactivated recipient), and no Message-ID reached the mail server
  twice; a mail ``in_doubt`` (its process died while the server took it) is counted, not an
  anomaly: it is the documented price of never sending twice (docs/notifications.md).
"""

from __future__ import annotations

import hmac
from collections import Counter, defaultdict
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from chassis.testkit.outside import HttpReceiver, ReceivedRequest, SmtpSink

WEBHOOK_PATH = "/soak-hook"
# Standard Webhooks: a receiver refuses a timestamp more than five minutes from its own clock.
TIMESTAMP_TOLERANCE_SECONDS = 300
# The webhook type of each of booking's events (status_changed: by its new status).
STATUS_TYPES = {"confirmed", "completed", "no_show"}
MAILED = {"booking.appointment.booked", "booking.appointment.cancelled", "booking.appointment.rescheduled"}


@dataclass
class Outside:
    receiver: HttpReceiver
    sink: SmtpSink
    secret: str = ""

    @classmethod
    def start(cls, resources: ExitStack) -> Outside:
        return cls(resources.enter_context(HttpReceiver(hang_seconds=1)), resources.enter_context(SmtpSink()))

    def environment(self) -> dict[str, str]:
        """What the stack's notification-service gets: the sink, quick retries."""
        return {
            "SMTP_URL": self.sink.url,
            "MAIL_FROM": "Clinic <no-reply@clinic.test>",
            "DELIVERY_RETRY_DELAYS": "[1, 2, 4, 8, 15, 30, 60]",
        }

    def subscribe(self, client: Any, admin_token: str) -> None:
        response = client.post(
            "/api/webhooks/",
            json={"url": self.receiver.url(WEBHOOK_PATH), "event_types": ["*"]},
            headers={"Authorization": f"Bearer {admin_token}"},
        )
        assert response.status_code == 201, response.text
        self.secret = response.json()["secret"]


def verify_as_received(secret: str, request: ReceivedRequest) -> None:
    """What a receiver's check (Standard Webhooks) said when ``request`` arrived: a v1 signature
    over its id, timestamp and body, and a timestamp within five minutes of its arrival.

    ``Webhook.verify`` compares the timestamp with the time of the call, and the checker runs
    after the soak: in a soak longer than five minutes, the first deliveries would be "too old".
    """
    msg_id, stamp = request.headers.get("webhook-id"), request.headers.get("webhook-timestamp")
    if not (msg_id and stamp and stamp.isdigit() and request.headers.get("webhook-signature")):
        raise WebhookVerificationError("Missing required headers")
    if abs(int(stamp) - request.received_at) > TIMESTAMP_TOLERANCE_SECONDS:
        raise WebhookVerificationError("Message timestamp too far from its arrival")
    sent_at = datetime.fromtimestamp(int(stamp), UTC)
    expected = Webhook(secret).sign(msg_id, sent_at, request.body.decode()).split(",", 1)[1]
    signatures = request.headers["webhook-signature"].split()
    given = [sig.split(",", 1)[1] for sig in signatures if sig.startswith("v1,")]
    if not any(hmac.compare_digest(expected, sig) for sig in given):
        raise WebhookVerificationError("No matching signature found")


def pending_notifications(rows: Callable[..., list[Any]], url: str) -> str | None:
    """What notification-service still has to send (None: nothing)."""
    deliveries = rows(url, "SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'")[0][0]
    mails = rows(url, "SELECT count(*) FROM mails WHERE status IN ('pending', 'sending')")[0][0]
    if deliveries or mails:
        return f"{deliveries} webhook deliveries and {mails} mails still to send"
    return None


def _news(event_type: str, data: dict[str, Any]) -> bool:
    return event_type != "booking.appointment.status_changed" or data.get("status") in STATUS_TYPES


def _mailed(event_type: str, data: dict[str, Any]) -> bool:
    return event_type in MAILED or (
        event_type == "booking.appointment.status_changed" and data.get("status") == "confirmed"
    )


def check_notifications(
    rows: Callable[..., list[Any]], urls: dict[str, str], outside: Outside
) -> tuple[list[str], dict[str, int]]:
    """(anomalies, counts) of webhooks and mails against booking's appointment events."""
    anomalies: list[str] = []
    events = rows(
        urls["booking"],
        "SELECT id, event_type, payload FROM outbox_events WHERE event_type LIKE 'booking.appointment.%'",
    )
    processed = {
        row.event_id: row.processed_at
        for row in rows(urls["notification"], "SELECT event_id, processed_at FROM processed_events")
    }
    deliveries = {
        row.event_id: row
        for row in rows(urls["notification"], "SELECT event_id, webhook_id, status FROM webhook_deliveries")
    }
    mails = defaultdict(list)
    for row in rows(urls["notification"], "SELECT key, status, message_id FROM mails"):
        mails[row.key.split(":", 1)[0]].append(row)

    received = Counter(r.headers.get("webhook-id") for r in outside.receiver.requests(WEBHOOK_PATH))
    for request in outside.receiver.requests(WEBHOOK_PATH):
        try:
            verify_as_received(outside.secret, request)
        except WebhookVerificationError as exc:
            anomalies.append(f"webhook {request.headers.get('webhook-id')} does not verify: {exc}")

    # Per appointment: (occurred_at, processed_at) of each event, to tell which were stale.
    timeline: dict[int, list[tuple[datetime, datetime | None]]] = defaultdict(list)
    for event in events:
        occurred = datetime.fromisoformat(event.payload["occurred_at"].replace("Z", "+00:00"))
        timeline[event.payload["data"]["appointment_id"]].append((occurred, processed.get(event.id)))

    expected_mails = 0
    for event in events:
        data = event.payload["data"]
        if event.id not in processed:
            anomalies.append(f"{event.event_type} {event.id}: never processed by notification-service")
            continue
        if _news(event.event_type, data):
            delivery = deliveries.get(event.id)
            if delivery is None:
                anomalies.append(f"{event.event_type} {event.id}: no webhook delivery")
            elif delivery.status != "delivered":
                anomalies.append(f"{event.event_type} {event.id}: webhook delivery {delivery.status}")
            elif not received[delivery.webhook_id]:
                anomalies.append(f"{event.event_type} {event.id}: delivered, but the receiver never got it")
        if not _mailed(event.event_type, data):
            continue
        occurred = datetime.fromisoformat(event.payload["occurred_at"].replace("Z", "+00:00"))
        done = processed[event.id]
        stale = any(
            other > occurred and at is not None and at < done
            for other, at in timeline[data["appointment_id"]]
        )
        found = mails.get(str(event.id), [])
        if stale:
            if found:
                anomalies.append(f"{event.event_type} {event.id}: mailed although a newer event came first")
            continue
        expected_mails += 2
        if len(found) != 2:
            anomalies.append(
                f"{event.event_type} {event.id}: {len(found)} mails, not one each to patient and doctor"
            )
        for mail in found:
            if mail.status not in ("sent", "skipped", "in_doubt"):
                anomalies.append(f"mail {mail.key}: {mail.status}")

    all_mails = [mail for group in mails.values() for mail in group]
    arrived = Counter(m.message["Message-ID"] for m in outside.sink.messages)
    anomalies += [f"mail {mid} reached the mail server {n} times" for mid, n in arrived.items() if n > 1]
    for mail in all_mails:
        if mail.status == "sent" and not arrived[mail.message_id]:
            anomalies.append(f"mail {mail.key} is marked sent but never reached the mail server")
    counts = {
        "webhook deliveries": len(deliveries),
        "webhook requests received": sum(received.values()),
        "mails expected": expected_mails,
        "mails sent": sum(1 for m in all_mails if m.status == "sent"),
        "mails in doubt": sum(1 for m in all_mails if m.status == "in_doubt"),
        "mails received": sum(arrived.values()),
    }
    return anomalies, counts
