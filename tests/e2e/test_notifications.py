"""Webhooks and mail through the whole stack: an admin subscribes through the gateway, real
bookings reach a real HTTP receiver (which verifies the Standard Webhooks signature) and a real
SMTP server (aiosmtpd), also across a broker outage and a restart of notification-service.

A stack of its own: notification-service with SMTP_URL, quick retries and a short time limit.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from chassis.testing import TcpProxy
from chassis.testkit.outside import HANG, HttpReceiver, SmtpSink

from .api import User, new_user, problem
from .stack import Stack, StackFactory, wait_until
from .test_appointments import booked, new_timeslot, token_of

DEADLINE = 40.0


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpSink]:
    with SmtpSink() as sink:
        yield sink


@pytest.fixture(scope="module")
def receiver() -> Iterator[HttpReceiver]:
    with HttpReceiver(hang_seconds=8) as server:
        yield server


@pytest.fixture(scope="module")
def notifying(stacks: StackFactory, smtp: SmtpSink) -> Iterator[Stack]:
    stack = stacks.start(
        "notify",
        # Five services provisioning at once (an Erlang VM each for rabbitmqctl) on a busy machine.
        startup_timeout=120.0,
        env={
            "SMTP_URL": smtp.url,
            "MAIL_FROM": "Clinic <no-reply@clinic.test>",
            "DELIVERY_RETRY_DELAYS": "[1, 2, 2, 2]",
            "WEBHOOK_TIMEOUT_SECONDS": "3",
            "CLINIC_TIMEZONE": "Europe/Berlin",
        },
    )
    yield stack
    stack.close()


@pytest.fixture(scope="module")
def admin_headers(notifying: Stack) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_of(notifying, notifying.admin)}"}


@pytest.fixture
def patient(notifying: Stack) -> User:
    return new_user(notifying, "patient", full_name="Pat Patient")


@pytest.fixture
def doctor(notifying: Stack) -> User:
    return new_user(notifying, "doctor", full_name="Dora Doctor")


def subscribe(stack: Stack, headers: dict[str, str], url: str, event_types: list[str]) -> dict[str, Any]:
    with stack.client() as client:
        response = client.post(
            "/api/webhooks/", json={"url": url, "event_types": event_types}, headers=headers
        )
    assert response.status_code == 201, response.text
    return response.json()


def deliveries(stack: Stack, headers: dict[str, str], webhook_id: int) -> list[dict[str, Any]]:
    with stack.client() as client:
        response = client.get(f"/api/webhooks/{webhook_id}/deliveries/", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["results"]


def bodies(receiver: HttpReceiver, path: str, secret: str) -> list[dict[str, Any]]:
    """What reached ``path``, each body after verifying its signature as a receiver would."""
    return [Webhook(secret).verify(r.body, r.headers) for r in receiver.requests(path)]


def mails_to(smtp: SmtpSink, address: str) -> list[Any]:
    return [m for m in smtp.messages if m.recipients == [address]]


def test_only_admins_manage_webhooks_through_the_gateway(notifying, admin_headers, patient):
    with notifying.client() as client:
        problem(client.get("/api/webhooks/"), 401)
        problem(client.get("/api/webhooks", headers={"Authorization": f"Bearer {patient.access}"}), 403)
        refused = problem(
            client.post(
                "/api/webhooks/",
                json={"url": "ftp://x.example/", "event_types": ["*"]},
                headers=admin_headers,
            ),
            422,
        )
        assert refused["errors"][0]["field"] == "url"
        unknown = problem(
            client.post(
                "/api/webhooks/",
                json={"url": "http://127.0.0.1:9/", "event_types": ["nope"]},
                headers=admin_headers,
            ),
            422,
        )
        assert unknown["errors"][0]["field"].startswith("event_types")
        assert client.get("/api/webhooks/", headers=admin_headers).status_code == 200


def test_a_booking_reaches_the_receiver_signed_and_both_people_by_mail(
    notifying, admin_headers, receiver, smtp, patient, doctor
):
    hook = subscribe(notifying, admin_headers, receiver.url("/e2e-booked"), ["appointment.booked"])
    slot = new_timeslot(notifying, doctor)

    appointment = booked(notifying, patient, slot["id"])

    wait_until(lambda: receiver.requests("/e2e-booked"), timeout=DEADLINE)
    [body] = bodies(receiver, "/e2e-booked", hook["secret"])
    assert body["type"] == "appointment.booked"
    assert body["data"]["appointment"]["id"] == appointment["id"]
    assert body["data"]["appointment"]["patient_name"] == "Pat Patient"
    wait_until(lambda: mails_to(smtp, patient.email) and mails_to(smtp, doctor.email), timeout=DEADLINE)
    [mail] = mails_to(smtp, patient.email)
    assert mail.message["Subject"] == "Your appointment is booked"
    assert "(Europe/Berlin)" in mail.message.get_body(preferencelist=("plain",)).get_content()
    assert mail.message.get_body(preferencelist=("html",)) is not None
    wait_until(
        lambda: [d["status"] for d in deliveries(notifying, admin_headers, hook["id"])] == ["delivered"],
        timeout=DEADLINE,
    )


def test_receivers_that_fail_first_or_hang_get_the_delivery_again(
    notifying, admin_headers, receiver, patient, doctor
):
    receiver.script("/e2e-flaky", [500])
    receiver.script("/e2e-slow", [HANG])
    flaky = subscribe(notifying, admin_headers, receiver.url("/e2e-flaky"), ["appointment.booked"])
    slow = subscribe(notifying, admin_headers, receiver.url("/e2e-slow"), ["appointment.booked"])

    booked(notifying, patient, new_timeslot(notifying, doctor)["id"])

    for hook, path in ((flaky, "/e2e-flaky"), (slow, "/e2e-slow")):
        wait_until(
            lambda hook=hook: (
                [d["status"] for d in deliveries(notifying, admin_headers, hook["id"])] == ["delivered"]
            ),
            timeout=DEADLINE,
        )
        [delivery] = deliveries(notifying, admin_headers, hook["id"])
        assert delivery["attempts"] == 2
        received = receiver.requests(path)
        assert len(received) == 2
        assert received[0].headers["webhook-id"] == received[1].headers["webhook-id"]
        bodies(receiver, path, hook["secret"])  # both attempts verify


def test_a_broker_outage_and_a_restart_lose_no_delivery_and_send_no_mail_twice(
    notifying, admin_headers, receiver, smtp, patient, doctor
):
    hook = subscribe(notifying, admin_headers, receiver.url("/e2e-outage"), ["*"])
    # The broker, as booking and notification-service reach it, through a proxy that can be cut.
    proxy = TcpProxy.for_url(notifying.amqp_url).start()
    direct = {}
    for name in ("booking", "notification"):
        process = notifying.process(name)
        key = f"{name.upper()}_AMQP_URL"
        direct[name] = process.env[key]
        process.env[key] = proxy.url(process.env[key])
    notifying.restart(*direct)
    try:
        slots = [new_timeslot(notifying, doctor) for _ in range(3)]
        first = booked(notifying, patient, slots[0]["id"])
        wait_until(lambda: len(receiver.requests("/e2e-outage")) == 1, timeout=DEADLINE)
        # Its mails are out too: a mail claimed by a process that dies waits for its claim to run
        # out (minutes) before another takes it; that case is notification-service's own test.
        wait_until(lambda: mails_to(smtp, patient.email) and mails_to(smtp, doctor.email), timeout=DEADLINE)

        proxy.cut()  # the broker is gone for both
        during = [booked(notifying, patient, slot["id"]) for slot in slots[1:]]
        notifying.kill("notification")  # and notification-service dies meanwhile
        notifying.start("notification")
        proxy.restore()

        expected = {first["id"], *(a["id"] for a in during)}
        wait_until(lambda: len(receiver.requests("/e2e-outage")) >= 3, timeout=DEADLINE)
        wait_until(lambda: len(mails_to(smtp, patient.email)) >= 3, timeout=DEADLINE)
    finally:
        # Both straight to the broker again, for the tests after this one.
        for name, url in direct.items():
            notifying.process(name).env[f"{name.upper()}_AMQP_URL"] = url
        notifying.restart(*direct)
        proxy.close()

    received = bodies(receiver, "/e2e-outage", hook["secret"])
    assert {b["data"]["appointment"]["id"] for b in received} == expected
    # At least once, each with its one webhook-id; mail exactly once each.
    assert len({r.headers["webhook-id"] for r in receiver.requests("/e2e-outage")}) == 3
    sent = Counter(m.message["Message-ID"] for m in mails_to(smtp, patient.email))
    assert len(sent) == 3
    assert set(sent.values()) == {1}
    assert len(mails_to(smtp, doctor.email)) == 3


def test_a_reschedule_reaches_the_receiver_and_both_people_with_the_old_time(
    notifying, admin_headers, receiver, smtp, patient, doctor
):
    hook = subscribe(notifying, admin_headers, receiver.url("/e2e-moved"), ["appointment.rescheduled"])
    old, new = new_timeslot(notifying, doctor), new_timeslot(notifying, doctor)
    appointment = booked(notifying, patient, old["id"])

    with notifying.client(patient.access) as client:
        moved = client.post(
            f"/api/appointments/{appointment['id']}/reschedule/", json={"timeslot_id": new["id"]}
        )
    assert moved.status_code == 200, moved.text

    wait_until(lambda: receiver.requests("/e2e-moved"), timeout=DEADLINE)
    [body] = bodies(receiver, "/e2e-moved", hook["secret"])
    assert body["type"] == "appointment.rescheduled"
    assert body["data"]["appointment"]["timeslot_id"] == new["id"]
    assert body["data"]["previous"]["timeslot_id"] == old["id"]

    def moved_mails() -> list[Any]:
        return [
            m for m in mails_to(smtp, patient.email) if m.message["Subject"] == "Your appointment has moved"
        ]

    wait_until(moved_mails, timeout=DEADLINE)
    assert "It was:" in moved_mails()[0].message.get_body(preferencelist=("plain",)).get_content()
    wait_until(
        lambda: [m for m in mails_to(smtp, doctor.email) if m.message["Subject"] == "Appointment moved"],
        timeout=DEADLINE,
    )
