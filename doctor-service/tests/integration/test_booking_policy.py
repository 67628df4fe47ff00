"""The booking policy: /api/doctors/me/booking-policy/ (the doctor) and /api/doctors/{id}/booking-policy/
(an admin), shown in the doctor representation and published in doctor.profile.updated."""

import pytest

from chassis.messaging.contracts import find_contracts_dir, validate_envelope
from doctor.domain import NO_POLICY

DOCTOR_ID = 61
OWN = "/api/doctors/me/booking-policy/"
ANY = f"/api/doctors/{DOCTOR_ID}/booking-policy/"
RULES = {
    "min_notice_minutes": 60,
    "booking_horizon_days": 30,
    "cancellation_notice_minutes": 1440,
    "max_active_per_patient": 2,
}


@pytest.fixture(autouse=True)
def a_new_doctor(client, add_doctor):
    add_doctor(DOCTOR_ID, "Cristina Yang")


def test_a_doctor_who_never_set_a_policy_has_the_defaults(client, callers):
    assert client.get(OWN, headers=callers("doctor", DOCTOR_ID).headers).json() == NO_POLICY
    assert client.get(ANY, headers=callers("admin").headers).json() == NO_POLICY


def test_a_doctor_sets_their_policy_and_everyone_sees_it(client, callers, published_for):
    response = client.patch(OWN, json=RULES, headers=callers("doctor", DOCTOR_ID).headers)
    assert (response.status_code, response.json()) == (200, RULES)
    assert (
        client.get(f"/api/doctors/{DOCTOR_ID}/", headers=callers("patient").headers).json()["booking_policy"]
        == RULES
    )
    listed = client.get(
        "/api/doctors/", params={"search": "yang"}, headers=callers("patient").headers
    ).json()["results"]
    assert [doctor["booking_policy"] for doctor in listed] == [RULES]
    [event] = published_for(DOCTOR_ID)
    validate_envelope(event, find_contracts_dir())
    assert event["data"]["booking_policy"] == RULES
    assert event["data"]["revision"] == 2


def test_a_partial_change_keeps_the_rest_and_null_lifts_a_limit(client, callers, published_for):
    client.patch(OWN, json=RULES, headers=callers("doctor", DOCTOR_ID).headers)
    response = client.patch(ANY, json={"booking_horizon_days": None}, headers=callers("admin").headers)
    assert response.json() == RULES | {"booking_horizon_days": None}
    # A change that changes nothing publishes nothing.
    client.patch(ANY, json={"booking_horizon_days": None}, headers=callers("admin").headers)
    assert [e["data"]["revision"] for e in published_for(DOCTOR_ID)] == [2, 3]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"min_notice_minutes": -1}, "min_notice_minutes"),
        ({"min_notice_minutes": None}, "min_notice_minutes"),
        ({"min_notice_minutes": "5"}, "min_notice_minutes"),
        ({"booking_horizon_days": 0}, "booking_horizon_days"),
        ({"cancellation_notice_minutes": 1.5}, "cancellation_notice_minutes"),
        ({"max_active_per_patient": 0}, "max_active_per_patient"),
        ({"max_active_per_patient": 10**12}, "max_active_per_patient"),
        ({"weekends": False}, "weekends"),
    ],
)
def test_a_bad_rule_is_a_422_naming_the_field_and_changes_nothing(client, callers, body, field):
    response = client.patch(OWN, json=body, headers=callers("doctor", DOCTOR_ID).headers)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert [error["field"] for error in response.json()["errors"]] == [field]
    assert client.get(OWN, headers=callers("doctor", DOCTOR_ID).headers).json() == NO_POLICY


def test_only_the_doctor_and_admins_manage_a_policy(client, callers):
    assert client.get(OWN, headers=callers("patient").headers).status_code == 403
    assert client.patch(ANY, json=RULES, headers=callers("patient").headers).status_code == 403
    assert client.patch(ANY, json=RULES, headers=callers("doctor", DOCTOR_ID).headers).status_code == 403
    assert (
        client.get("/api/doctors/999999/booking-policy/", headers=callers("admin").headers).status_code == 404
    )
