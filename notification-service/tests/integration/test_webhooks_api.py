"""Admins manage webhook subscriptions; bad URLs and event types are refused naming the field."""

import base64
import uuid

import pytest

from notification.models import WebhookDelivery

HOOK = "http://127.0.0.1:9/hook"  # allowed only where private targets are


@pytest.fixture
def allowed_client(client):
    client.app.state.settings.webhook_allow_private_targets = True
    return client


def create(client, admin, **body):
    return client.post("/api/webhooks/", json={"url": HOOK, "event_types": ["*"], **body}, headers=admin)


def test_an_admin_subscribes_and_gets_a_standard_webhooks_secret(allowed_client, admin):
    response = create(allowed_client, admin, event_types=["appointment.booked"], description="front desk")

    assert response.status_code == 201
    body = response.json()
    assert body["url"] == HOOK
    assert body["event_types"] == ["appointment.booked"]
    assert body["description"] == "front desk"
    assert body["is_active"] is True
    assert body["secret"].startswith("whsec_")
    assert len(base64.b64decode(body["secret"].removeprefix("whsec_"))) >= 24
    assert body["created_at"].endswith(("Z", "+00:00"))
    assert allowed_client.get(f"/api/webhooks/{body['id']}/", headers=admin).json() == body


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.org/hook", "http:// or https://"),
        ("javascript:alert(1)", "http:// or https://"),
        ("not a url", "http:// or https://"),
        ("http://127.0.0.1:8000/hook", "loopback, private or link-local"),
        ("http://localhost/hook", "loopback, private or link-local"),
        ("http://10.1.2.3/hook", "loopback, private or link-local"),
        ("http://192.168.0.10/hook", "loopback, private or link-local"),
        ("http://169.254.169.254/latest/meta-data", "loopback, private or link-local"),
        ("http://[::1]/hook", "loopback, private or link-local"),
        ("http://[::ffff:127.0.0.1]/hook", "loopback, private or link-local"),
        ("http://0.0.0.0/hook", "not an address a receiver can have"),
        ("http://user:secret@93.184.215.14/hook", "user name or password"),
        ("http://no-such-host.invalid/hook", "does not resolve"),
    ],
)
def test_urls_that_are_not_http_or_lead_inside_are_refused_naming_the_url(client, admin, url, message):
    response = create(client, admin, url=url)

    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    [error] = response.json()["errors"]
    assert error["field"] == "url"
    assert message in error["message"]


def test_a_public_address_is_accepted(client, admin):
    # Never called: this test runs no workers.
    assert create(client, admin, url="https://93.184.215.14/hook").status_code == 201


@pytest.mark.parametrize(
    "event_types",
    [[], ["appointment.exploded"], ["*", "appointment.booked"], "appointment.booked", None],
)
def test_unknown_or_missing_event_types_are_refused_naming_the_field(allowed_client, admin, event_types):
    response = create(allowed_client, admin, event_types=event_types)

    assert response.status_code == 422, response.text
    assert {error["field"].split(".")[0] for error in response.json()["errors"]} == {"event_types"}


def test_waitlist_offers_can_be_subscribed_to(allowed_client, admin):
    response = create(allowed_client, admin, event_types=["waitlist.offered", "appointment.cancelled"])
    assert response.status_code == 201
    assert response.json()["event_types"] == ["waitlist.offered", "appointment.cancelled"]


def test_only_admins_manage_webhooks(client, admin, minter):
    assert client.get("/api/webhooks/").status_code == 401
    for role in ("patient", "doctor"):
        headers = minter.headers(user_id=5, role=role)
        assert client.get("/api/webhooks/", headers=headers).status_code == 403
        assert create(client, headers).status_code == 403


def test_subscriptions_are_listed_paginated_changed_and_deleted(allowed_client, admin):
    ids = [create(allowed_client, admin, description=f"hook {n}").json()["id"] for n in range(3)]

    page = allowed_client.get("/api/webhooks/", params={"page_size": 2}, headers=admin).json()
    assert page["count"] == 3
    assert [hook["id"] for hook in page["results"]] == ids[:2]
    assert page["next"] is not None

    changed = allowed_client.patch(
        f"/api/webhooks/{ids[0]}/",
        json={"is_active": False, "event_types": ["appointment.confirmed"]},
        headers=admin,
    )
    assert changed.status_code == 200
    assert changed.json()["is_active"] is False
    assert changed.json()["event_types"] == ["appointment.confirmed"]
    refused = allowed_client.patch(f"/api/webhooks/{ids[0]}/", json={"url": "gopher://x"}, headers=admin)
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "url"

    assert allowed_client.delete(f"/api/webhooks/{ids[1]}/", headers=admin).status_code == 204
    assert allowed_client.get(f"/api/webhooks/{ids[1]}/", headers=admin).status_code == 404
    assert allowed_client.delete(f"/api/webhooks/{ids[1]}/", headers=admin).status_code == 404
    assert allowed_client.patch("/api/webhooks/999999/", json={}, headers=admin).status_code == 404
    assert allowed_client.get("/api/webhooks/999999/deliveries/", headers=admin).status_code == 404


def failed_delivery(db, subscription_id: int, webhook_id: str) -> int:
    """A delivery of the subscription whose retries are spent (``failed``); its id."""
    with db.transaction() as session:
        delivery = WebhookDelivery(
            subscription_id=subscription_id,
            event_id=uuid.uuid4(),
            event_type="appointment.booked",
            webhook_id=webhook_id,
            payload={},
            status="failed",
            attempts=8,
            failures=8,
        )
        session.add(delivery)
        session.flush()
        return delivery.id


def test_deliveries_are_listed_newest_first_and_redelivered_with_202(allowed_client, admin, db):
    webhook_id = create(allowed_client, admin).json()["id"]
    for n in range(3):
        failed_delivery(db, webhook_id, f"msg_{webhook_id}_{n}")

    page = allowed_client.get(f"/api/webhooks/{webhook_id}/deliveries/", headers=admin).json()
    assert page["count"] == 3
    assert [d["webhook_id_header"] for d in page["results"]] == [f"msg_{webhook_id}_{n}" for n in (2, 1, 0)]
    newest = page["results"][0]

    again = allowed_client.post(
        f"/api/webhooks/{webhook_id}/deliveries/{newest['id']}/redeliver/", headers=admin
    )
    assert again.status_code == 202
    assert again.json()["status"] == "pending"
    assert again.json()["webhook_id_header"] == newest["webhook_id_header"]
    assert (
        allowed_client.post(
            f"/api/webhooks/{webhook_id}/deliveries/999999/redeliver/", headers=admin
        ).status_code
        == 404
    )


def test_a_delivery_redelivered_while_its_subscription_is_paused_waits_until_it_is_resumed(
    allowed_client, admin, db
):
    webhook_id = create(allowed_client, admin).json()["id"]
    delivery_id = failed_delivery(db, webhook_id, f"msg_{uuid.uuid4().hex}")
    path = f"/api/webhooks/{webhook_id}/"
    assert allowed_client.patch(path, json={"is_active": False}, headers=admin).status_code == 200

    again = allowed_client.post(f"{path}deliveries/{delivery_id}/redeliver/", headers=admin)

    assert again.status_code == 202
    assert (again.json()["status"], again.json()["next_attempt_at"]) == ("pending", None)
    assert allowed_client.patch(path, json={"is_active": True}, headers=admin).status_code == 200
    [resumed] = allowed_client.get(f"{path}deliveries/", headers=admin).json()["results"]
    assert resumed["next_attempt_at"] is not None
