"""identity publishes user events through its outbox, as contracts/events/identity.user.* describe."""

from __future__ import annotations

import json
from pathlib import Path

from support import PASSWORD, assert_problem, bearer

from chassis.messaging.contracts import validate_envelope

CONTRACTS = Path(__file__).resolve().parents[3] / "contracts"


def test_registration_publishes_a_registered_event_that_matches_its_contract(api, broker):
    queue = broker.bind_queue("identity.user.*")

    user = api.register(role="doctor", full_name="Dr Ada Lovelace", phone="+998 90 123 45 67")

    [event] = broker.envelopes(queue, 1, user_id=user["id"])
    validate_envelope(event, CONTRACTS)
    assert event["event_type"] == "identity.user.registered"
    assert event["producer"] == "identity"
    assert event["data"] == {
        "user_id": user["id"],
        "full_name": "Dr Ada Lovelace",
        "email": user["email"],
        "role": "doctor",
        "is_active": True,
        "date_joined": event["data"]["date_joined"],
        "revision": 1,
    }
    # The address goes to notification-service (mail); the phone and the password go nowhere.
    for private in ("password", "+998 90 123 45 67"):
        assert private not in json.dumps(event)


def test_a_phone_change_alone_publishes_nothing_and_with_a_rename_only_the_rename(api, client, broker):
    queue = broker.bind_queue("identity.user.*")
    user, tokens = api.signed_in(phone="+1 555 0100")
    assert (
        client.patch("/api/auth/me/", json={"phone": "+1 555 0101"}, headers=bearer(tokens)).status_code
        == 200
    )
    both = client.patch(
        "/api/auth/me/", json={"phone": "+1 555 0102", "full_name": "New Name"}, headers=bearer(tokens)
    )
    assert both.status_code == 200

    registered, updated = broker.envelopes(queue, 2, user_id=user["id"])
    assert broker.get(queue, count=1, timeout=1) == []
    validate_envelope(updated, CONTRACTS)
    assert updated["data"]["changed"] == ["full_name"]
    assert updated["data"]["revision"] == registered["data"]["revision"] + 1
    assert "phone" not in updated["data"] and "+1 555" not in json.dumps(updated)


def test_a_rename_and_a_deactivation_publish_events_with_growing_revisions(api, client, broker):
    queue = broker.bind_queue("identity.user.*")
    _, admin_tokens = api.admin()
    user, tokens = api.signed_in(role="doctor")

    renamed = client.patch("/api/auth/me/", json={"full_name": "Dr Renamed"}, headers=bearer(tokens))
    assert renamed.status_code == 200
    assert client.delete(f"/api/users/{user['id']}/", headers=bearer(admin_tokens)).status_code == 204

    registered, updated, deactivated = broker.envelopes(queue, 3, user_id=user["id"])
    for event in (registered, updated, deactivated):
        validate_envelope(event, CONTRACTS)
    assert updated["event_type"] == "identity.user.updated"
    assert updated["data"]["full_name"] == "Dr Renamed"
    assert updated["data"]["changed"] == ["full_name"]
    assert deactivated["event_type"] == "identity.user.deactivated"
    assert deactivated["data"]["role"] == "doctor"
    assert [e["data"]["revision"] for e in (registered, updated, deactivated)] == [1, 2, 3]


def test_a_role_change_by_an_admin_publishes_an_update_naming_the_role(api, client, broker):
    queue = broker.bind_queue("identity.user.updated")
    _, admin_tokens = api.admin()
    user = api.register()

    changed = client.patch(f"/api/users/{user['id']}/", json={"role": "doctor"}, headers=bearer(admin_tokens))
    assert changed.status_code == 200

    [event] = broker.envelopes(queue, 1, user_id=user["id"])
    validate_envelope(event, CONTRACTS)
    assert event["data"]["role"] == "doctor"
    assert event["data"]["changed"] == ["role"]


def test_a_refused_registration_publishes_nothing(api, client, broker):
    queue = broker.bind_queue("identity.user.*")
    user = api.register()
    broker.get(queue, count=1, timeout=5)

    duplicate = {"email": user["email"].upper(), "password": PASSWORD, "full_name": "Again"}
    assert_problem(client.post("/api/auth/register/", json=duplicate), 409)

    assert broker.get(queue, count=1, timeout=1) == []
