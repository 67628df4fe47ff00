"""doctor.profile.updated: published through the outbox, and always within its contract."""

import pika

from chassis.messaging.contracts import find_contracts_dir, validate_envelope
from doctor.domain import NO_POLICY
from doctor.events import PROFILE_UPDATED


def test_an_edit_publishes_the_whole_profile_within_the_contract(
    live_client, callers, add_doctor, profile_events, wait_until
):
    add_doctor(20_001, "Hannibal Lecter", "Psychiatry")
    body = {"specialty": "Forensic Psychiatry", "bio": "Enjoys fine dining.", "years_of_experience": 30}
    assert (
        live_client.patch(
            "/api/doctors/me/", json=body, headers=callers("doctor", 20_001).headers
        ).status_code
        == 200
    )

    properties, envelope = profile_events.next_message()
    assert envelope["event_type"] == PROFILE_UPDATED
    assert envelope["producer"] == "doctor"
    assert envelope["data"] == {
        "doctor_id": 20_001,
        "full_name": "Hannibal Lecter",
        **body,
        "is_active": True,
        "revision": 2,
        "booking_policy": NO_POLICY,
    }
    assert properties.message_id == envelope["event_id"]
    assert properties.delivery_mode == pika.DeliveryMode.Persistent.value
    assert properties.content_type == "application/json"


def test_an_admin_edit_is_published_too(live_client, callers, add_doctor, profile_events, wait_until):
    add_doctor(20_002, "James Wilson", "Oncology")
    response = live_client.patch(
        "/api/doctors/20002/", json={"years_of_experience": 12}, headers=callers("admin").headers
    )
    assert response.status_code == 200
    _, envelope = profile_events.next_message()
    assert envelope["data"]["doctor_id"] == 20_002
    assert envelope["data"]["years_of_experience"] == 12


def test_a_new_doctors_profile_is_published_within_the_contract(
    live_client, identity, profile_events, wait_until
):
    identity.registered(20_003, "Lisa Cuddy")
    _, envelope = profile_events.next_message()
    assert envelope["data"] == {
        "doctor_id": 20_003,
        "full_name": "Lisa Cuddy",
        "specialty": "",
        "bio": "",
        "years_of_experience": 0,
        "is_active": True,
        "revision": 1,
        "booking_policy": NO_POLICY,
    }


def test_each_edit_counts_up_the_profile_revision(client, callers, add_doctor, published_for):
    add_doctor(20_004, "Eric Foreman")
    for years in (1, 2):
        client.patch(
            "/api/doctors/me/", json={"years_of_experience": years}, headers=callers("doctor", 20_004).headers
        )
    events = published_for(20_004)
    for envelope in events:
        validate_envelope(envelope, find_contracts_dir())
    assert [(e["data"]["revision"], e["data"]["years_of_experience"]) for e in events] == [(2, 1), (3, 2)]


def test_an_edit_that_changes_nothing_publishes_nothing(client, callers, add_doctor, published_for):
    add_doctor(20_005, "Robert Chase", "Intensive Care")
    response = client.patch(
        "/api/doctors/me/", json={"specialty": "Intensive Care"}, headers=callers("doctor", 20_005).headers
    )
    assert response.status_code == 200
    assert published_for(20_005) == []


def test_a_refused_edit_publishes_nothing(client, callers, add_doctor, published_for):
    add_doctor(20_006, "Allison Cameron")
    response = client.patch(
        "/api/doctors/me/", json={"years_of_experience": 99}, headers=callers("doctor", 20_006).headers
    )
    assert response.status_code == 422
    assert published_for(20_006) == []
