"""Identity's user events, delivered through RabbitMQ to the real consumer, keep the profiles in step."""

import itertools

import pytest
from sqlalchemy import text

from doctor.domain import NO_POLICY
from doctor.events import PROFILE_UPDATED

IDS = itertools.count(10_001)


@pytest.fixture
def user_id() -> int:
    return next(IDS)


@pytest.fixture
def api(live_client, callers, identity, wait_until):
    return Api(live_client, callers, identity, wait_until)


class Api:
    """What a patient, an admin or the doctor would see while the events are applied."""

    def __init__(self, client, callers, identity, wait_until) -> None:
        self.client, self.callers, self.identity, self.wait_until = client, callers, identity, wait_until

    def doctor(self, doctor_id: int):
        return self.client.get(f"/api/doctors/{doctor_id}/", headers=self.callers("admin").headers)

    def own_profile(self, doctor_id: int):
        return self.client.get("/api/doctors/me/", headers=self.callers("doctor", doctor_id).headers)

    def listed_ids(self, search: str) -> list[int]:
        response = self.client.get(
            "/api/doctors/", params={"search": search}, headers=self.callers("patient").headers
        )
        return [doctor["id"] for doctor in response.json()["results"]]

    def edit(self, doctor_id: int, **changes):
        response = self.client.patch(
            "/api/doctors/me/", json=changes, headers=self.callers("doctor", doctor_id).headers
        )
        assert response.status_code == 200, response.text

    def wait_for(self, doctor_id: int, **expected) -> dict:
        def shown() -> dict | None:
            response = self.doctor(doctor_id)
            if response.status_code != 200:
                return None
            body = response.json()
            return body if {key: body[key] for key in expected} == expected else None

        return self.wait_until(shown, what=f"doctor {doctor_id} showing {expected}")

    def wait_until_hidden(self, doctor_id: int) -> None:
        self.wait_until(lambda: self.doctor(doctor_id).status_code == 404, what=f"doctor {doctor_id} hidden")

    def settle(self) -> None:
        """Wait until every event published so far is handled.

        One consumer handles the queue in order, so once a registration published
        now shows, everything published before it has been handled too.
        """
        barrier = next(IDS)
        self.identity.registered(barrier, "Barrier Doctor")
        self.wait_for(barrier, full_name="Barrier Doctor")


def test_a_registered_doctor_gets_an_empty_listed_profile(api, identity, user_id):
    identity.registered(user_id, "Ada Lovelace")
    assert api.wait_for(user_id) == {
        "id": user_id,
        "full_name": "Ada Lovelace",
        "specialty": "",
        "bio": "",
        "years_of_experience": 0,
        "booking_policy": NO_POLICY,
    }
    assert user_id in api.listed_ids("lovelace")


def test_a_registered_patient_gets_no_profile(api, identity, user_id):
    identity.registered(user_id, "Pat Patient", role="patient")
    api.settle()
    assert api.doctor(user_id).status_code == 404
    assert api.own_profile(user_id).json()["code"] == "doctor_profile_not_ready"


def test_a_renamed_doctor_keeps_their_profile_under_the_new_name(api, identity, user_id):
    identity.registered(user_id, "Jane Doe")
    api.wait_for(user_id)
    api.edit(user_id, specialty="Cardiology")
    identity.updated(user_id, "Jane Smith", revision=2, changed=["full_name"])
    api.wait_for(user_id, full_name="Jane Smith", specialty="Cardiology")
    assert user_id in api.listed_ids("jane smith")


def test_a_phone_change_publishes_nothing(api, identity, user_id, published_for):
    identity.registered(user_id, "Phone Changer")
    api.wait_for(user_id)
    identity.updated(user_id, "Phone Changer", revision=2, changed=["phone"], phone="+33 1 23 45 67 89")
    api.settle()
    assert [event["data"]["revision"] for event in published_for(user_id)] == [1]


def test_a_deactivated_doctor_is_hidden_and_keeps_their_profile(api, identity, user_id):
    identity.registered(user_id, "Leaving Doctor")
    api.wait_for(user_id)
    api.edit(user_id, specialty="Oncology", years_of_experience=9)
    identity.deactivated(user_id, revision=2)
    api.wait_until_hidden(user_id)
    assert user_id not in api.listed_ids("leaving")
    assert api.own_profile(user_id).json()["code"] == "doctor_profile_inactive"
    identity.updated(user_id, "Leaving Doctor", revision=3, changed=["is_active"])
    api.wait_for(user_id, specialty="Oncology", years_of_experience=9)


def test_an_inactive_flag_hides_the_doctor(api, identity, user_id):
    identity.registered(user_id, "Paused Doctor")
    api.wait_for(user_id)
    identity.updated(user_id, "Paused Doctor", revision=2, changed=["is_active"], is_active=False)
    api.wait_until_hidden(user_id)


def test_a_user_who_becomes_a_doctor_gets_a_profile(api, identity, user_id):
    identity.registered(user_id, "Promoted User", role="patient")
    identity.updated(user_id, "Promoted User", revision=2, changed=["role"], role="doctor")
    api.wait_for(user_id, full_name="Promoted User", specialty="")


def test_a_doctor_who_stops_being_one_is_hidden_and_comes_back_with_their_profile(api, identity, user_id):
    identity.registered(user_id, "Role Changer")
    api.wait_for(user_id)
    api.edit(user_id, bio="Kept through role changes.")
    identity.updated(user_id, "Role Changer", revision=2, changed=["role"], role="patient")
    api.wait_until_hidden(user_id)
    identity.updated(user_id, "Role Changer", revision=3, changed=["role"], role="doctor")
    api.wait_for(user_id, bio="Kept through role changes.")


def test_hiding_and_showing_a_profile_publishes_each_change(api, identity, user_id, published_for):
    identity.registered(user_id, "Published Doctor")
    api.wait_for(user_id)
    identity.deactivated(user_id, revision=2)
    api.wait_until_hidden(user_id)
    identity.updated(user_id, "Published Doctor", revision=3, changed=["is_active"])
    api.wait_for(user_id)
    events = published_for(user_id)
    assert {event["event_type"] for event in events} == {PROFILE_UPDATED}
    assert [(e["data"]["revision"], e["data"]["is_active"]) for e in events] == [
        (1, True),
        (2, False),
        (3, True),
    ]


def test_a_duplicated_event_takes_effect_once(api, identity, user_id, published_for):
    identity.registered(user_id, "Twice Delivered")
    api.wait_for(user_id)
    rename = identity.updated(user_id, "Once Renamed", revision=2, changed=["full_name"])
    identity.publish(rename)
    api.settle()
    api.wait_for(user_id, full_name="Once Renamed")
    assert [event["data"]["full_name"] for event in published_for(user_id)] == [
        "Twice Delivered",
        "Once Renamed",
    ]


def test_an_update_arriving_before_the_registration_wins(api, identity, user_id):
    identity.updated(user_id, "Newer Name", revision=2, changed=["full_name"])
    identity.registered(user_id, "Older Name")
    api.settle()
    api.wait_for(user_id, full_name="Newer Name")


def test_a_stale_rename_is_ignored(api, identity, user_id):
    identity.registered(user_id, "First Name")
    identity.updated(user_id, "Third Name", revision=3, changed=["full_name"])
    identity.updated(user_id, "Second Name", revision=2, changed=["full_name"])
    api.settle()
    api.wait_for(user_id, full_name="Third Name")


def test_a_rename_delivered_after_the_deactivation_that_followed_it_loses_nothing(api, identity, user_id, db):
    # Found by the soak: the deactivation (revision 3) carried no name, so the rename before it
    # (revision 2), delivered late, was dropped as stale and the hidden profile kept the old name.
    identity.registered(user_id, "Old Name")
    api.wait_for(user_id)
    identity.deactivated(user_id, revision=3, full_name="New Name")
    identity.updated(user_id, "New Name", revision=2, changed=["full_name"])
    api.settle()
    with db.reading() as connection:
        name = connection.execute(
            text("SELECT full_name FROM doctors WHERE id = :id"), {"id": user_id}
        ).scalar()
    assert name == "New Name"


def test_a_deactivation_arriving_before_the_registration_keeps_the_doctor_hidden(api, identity, user_id):
    identity.deactivated(user_id, revision=2)
    identity.registered(user_id, "Never Listed")
    api.settle()
    assert api.doctor(user_id).status_code == 404
    assert api.own_profile(user_id).json()["code"] == "doctor_profile_inactive"


def test_a_role_change_away_from_doctor_arriving_first_keeps_the_profile_hidden(api, identity, user_id):
    identity.updated(user_id, "Former Doctor", revision=2, changed=["role"], role="admin")
    identity.registered(user_id, "Former Doctor")
    api.settle()
    assert api.doctor(user_id).status_code == 404
