"""Events: identity's user events feed the names and cascade deactivations; booking's own events
match their contracts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from booking.models import User
from chassis.messaging import Envelope, ProcessedEvent
from chassis.messaging.contracts import validate_envelope
from chassis.testkit import lock_waiters, wait_until


def registered(user_id: int, full_name: str, role: str, revision: int = 1, is_active: bool = True) -> dict:
    return {
        "user_id": user_id,
        "full_name": full_name,
        "phone": None,
        "role": role,
        "is_active": is_active,
        "date_joined": datetime.now(UTC).isoformat(),
        "revision": revision,
    }


def updated(user_id: int, full_name: str, role: str, revision: int, is_active: bool = True) -> dict:
    return {
        "user_id": user_id,
        "full_name": full_name,
        "phone": None,
        "role": role,
        "is_active": is_active,
        "revision": revision,
        "changed": ["full_name"],
    }


def deactivated(user_id: int, role: str, revision: int, full_name: str | None = None) -> dict:
    return {
        "user_id": user_id,
        **({"full_name": full_name} if full_name is not None else {}),
        "role": role,
        "revision": revision,
        "deactivated_at": datetime.now(UTC).isoformat(),
    }


@pytest.fixture
def pair(new_id, seed):
    patient, doctor = new_id(), new_id()
    return patient, doctor, seed(patient_id=patient, doctor_id=doctor)


def all_of(events: list[dict], appointment_ids: set[int], *, count: int) -> list[dict] | None:
    """The events about ``appointment_ids`` once there are ``count`` of them, else None."""
    found = [e for e in events if e["data"]["appointment_id"] in appointment_ids]
    return found if len(found) >= count else None


def names(client, callers, appointment, patient) -> tuple[str, str]:
    body = client.get(
        f"/api/appointments/{appointment.id}/", headers=callers("patient", patient).headers
    ).json()
    return body["doctor_name"], body["patient_name"]


def test_registered_users_names_appear_on_their_appointments(client, broker, callers, pair):
    patient, doctor, appointment = pair
    broker.publish_event("identity.user.registered", registered(patient, "Pat Smith", "patient"))
    broker.publish_event("identity.user.registered", registered(doctor, "Dr Who", "doctor"))
    wait_until(lambda: names(client, callers, appointment, patient) == ("Dr Who", "Pat Smith"))


def test_a_rename_shows_at_once_on_old_appointments(client, broker, callers, pair):
    patient, doctor, appointment = pair
    broker.publish_event("identity.user.registered", registered(doctor, "Dr Who", "doctor"))
    broker.publish_event("identity.user.updated", updated(doctor, "Dr Jane Who", "doctor", revision=2))
    wait_until(lambda: names(client, callers, appointment, patient)[0] == "Dr Jane Who")


def test_an_older_update_arriving_late_does_not_undo_a_newer_one(client, broker, callers, pair):
    patient, doctor, appointment = pair
    broker.publish_event("identity.user.updated", updated(doctor, "Newest Name", "doctor", revision=3))
    broker.publish_event("identity.user.updated", updated(doctor, "Older Name", "doctor", revision=2))
    broker.publish_event("identity.user.registered", registered(doctor, "First Name", "doctor", revision=1))
    broker.publish_event("identity.user.registered", registered(patient, "Marker", "patient"))
    # The consumer handles one queue in order: once the marker shows, the stale events were handled.
    wait_until(lambda: names(client, callers, appointment, patient)[1] == "Marker")
    assert names(client, callers, appointment, patient)[0] == "Newest Name"


def test_a_duplicated_event_is_applied_once(client, broker, callers, pair):
    patient, doctor, appointment = pair
    first = broker.publish_event("identity.user.updated", updated(doctor, "Dr Once", "doctor", revision=5))
    broker.publish_event("identity.user.updated", updated(doctor, "Dr Twice", "doctor", revision=6))
    # The same event (same id) again, e.g. a relay redelivery: the inbox makes it a no-op.
    broker.publish_event("identity.user.updated", envelope=first)
    broker.publish_event("identity.user.registered", registered(patient, "Marker", "patient"))
    wait_until(lambda: names(client, callers, appointment, patient)[1] == "Marker")
    assert names(client, callers, appointment, patient)[0] == "Dr Twice"


def test_a_name_learnt_after_the_deactivation_still_shows(client, broker, callers, pair):
    patient, doctor, appointment = pair
    broker.publish_event("identity.user.deactivated", deactivated(doctor, "doctor", revision=2))
    broker.publish_event("identity.user.registered", registered(doctor, "Dr Late", "doctor", revision=1))
    wait_until(lambda: names(client, callers, appointment, patient)[0] == "Dr Late")


def test_a_rename_delivered_after_the_deactivation_that_followed_it_loses_nothing(
    client, broker, callers, pair
):
    # Found by the soak: the deactivation (revision 3) carried no name, so the rename before it
    # (revision 2), delivered late, was dropped as stale and the old name stayed.
    patient, doctor, appointment = pair
    broker.publish_event("identity.user.registered", registered(doctor, "Dr Original", "doctor", revision=1))
    wait_until(lambda: names(client, callers, appointment, patient)[0] == "Dr Original")
    broker.publish_event(
        "identity.user.deactivated", deactivated(doctor, "doctor", revision=3, full_name="Dr Renamed")
    )
    broker.publish_event("identity.user.updated", updated(doctor, "Dr Renamed", "doctor", revision=2))
    wait_until(lambda: names(client, callers, appointment, patient)[0] == "Dr Renamed")


@pytest.mark.parametrize("whose", ["patient", "doctor"])
def test_deactivating_a_user_cancels_their_future_active_appointments(
    client, broker, callers, seed, new_id, whose
):
    user = new_id()
    as_role = (
        {"patient_id": user, "doctor_id": new_id()}
        if whose == "patient"
        else {"patient_id": new_id(), "doctor_id": user}
    )
    pending = seed(**as_role)
    confirmed = seed(**as_role, status="confirmed")
    past = seed(**as_role, status="confirmed", starts_in=-timedelta(hours=2))
    done = seed(**as_role, status="completed", starts_in=-timedelta(days=2))
    admin = callers("admin", new_id()).headers

    broker.publish_event("identity.user.deactivated", deactivated(user, whose, revision=2))

    def status(appointment):
        return client.get(f"/api/appointments/{appointment.id}/", headers=admin).json()

    wait_until(lambda: status(pending)["status"] == status(confirmed)["status"] == "cancelled")
    assert status(pending)["cancellation_reason"] == f"The {whose}'s account was deactivated."
    assert status(past)["status"] == "confirmed"
    assert status(done)["status"] == "completed"
    wanted = {pending.id, confirmed.id}
    cancellations = wait_until(
        lambda: all_of(broker.published("booking.appointment.cancelled"), wanted, count=2)
    )
    assert sorted(e["data"]["appointment_id"] for e in cancellations) == sorted([pending.id, confirmed.id])
    assert {e["data"]["cancelled_by"] for e in cancellations} == {"system"}


def test_an_update_of_an_inactive_account_delivered_before_its_deactivation_cancels_too(
    client, broker, callers, seed, new_id
):
    # Found by the soak: a rename committed just after the deactivation (revision 3, the account
    # inactive) was delivered first; the deactivation (revision 2) then came stale and cancelled
    # nothing, leaving a deactivated patient's appointment active.
    patient = new_id()
    appointment = seed(patient_id=patient, doctor_id=new_id())
    admin = callers("admin", new_id()).headers
    broker.publish_event(
        "identity.user.updated", updated(patient, "Renamed", "patient", revision=3, is_active=False)
    )
    broker.publish_event("identity.user.deactivated", deactivated(patient, "patient", revision=2))
    wait_until(
        lambda: (
            client.get(f"/api/appointments/{appointment.id}/", headers=admin).json()["status"] == "cancelled"
        )
    )


def test_a_stale_deactivation_does_not_cancel_appointments_of_a_reactivated_user(
    client, broker, callers, seed, new_id
):
    patient = new_id()
    broker.publish_event("identity.user.updated", updated(patient, "Back Again", "patient", revision=4))
    appointment = seed(patient_id=patient, doctor_id=new_id())
    wait_until(lambda: names(client, callers, appointment, patient)[1] == "Back Again")

    broker.publish_event("identity.user.deactivated", deactivated(patient, "patient", revision=3))
    broker.publish_event("identity.user.registered", registered(new_id(), "Marker", "patient"))
    broker.publish_event("identity.user.updated", updated(patient, "Back Again!", "patient", revision=5))

    wait_until(lambda: names(client, callers, appointment, patient)[1] == "Back Again!")
    assert (
        client.get(
            f"/api/appointments/{appointment.id}/", headers=callers("patient", patient).headers
        ).json()["status"]
        == "pending"
    )


def test_every_event_booking_publishes_matches_its_contract(
    client, scheduling, broker, callers, new_id, seed
):
    slot = new_id()
    scheduling.add_timeslot(slot, new_id())
    patient = callers("patient", new_id()).headers
    booked = client.post(
        "/api/appointments/", json={"timeslot_id": slot, "reason": "check-up"}, headers=patient
    ).json()
    admin = callers("admin", new_id()).headers
    client.patch(f"/api/appointments/{booked['id']}/status/", json={"status": "confirmed"}, headers=admin)
    client.patch(
        f"/api/appointments/{booked['id']}/status/",
        json={"status": "cancelled", "cancellation_reason": "clinic closed"},
        headers=admin,
    )
    started = seed(
        patient_id=new_id(), doctor_id=new_id(), status="confirmed", starts_in=-timedelta(minutes=5)
    )
    client.patch(f"/api/appointments/{started.id}/status/", json={"status": "no_show"}, headers=admin)

    events = wait_until(
        lambda: all_of(
            broker.published("booking.appointment.booked")
            + broker.published("booking.appointment.status_changed")
            + broker.published("booking.appointment.cancelled"),
            {booked["id"], started.id},
            count=4,
        )
    )

    assert sorted(e["event_type"] for e in events) == [
        "booking.appointment.booked",
        "booking.appointment.cancelled",
        "booking.appointment.status_changed",
        "booking.appointment.status_changed",
    ]
    for event in events:
        validate_envelope(event, broker.contracts_dir)  # as broker.published() did on arrival
        assert event["producer"] == "booking"
        assert Envelope.from_json(event).event_type == event["event_type"]
    # Every event of an appointment carries the patient's reason (notification's webhooks send it).
    reasons = {e["data"]["reason"] for e in events if e["data"]["appointment_id"] == booked["id"]}
    assert reasons == {"check-up"}


def test_a_deactivation_overtaken_by_a_newer_event_of_another_replica_cancels_nothing(
    app, client, broker, callers, seed, new_id
):
    # Booking has not stored the patient yet when this replica applies an older deactivation
    # and another replica their reactivation (a newer revision), which commits first; the
    # appointment stands for one the patient booked right after it. The deactivation must see
    # the newer revision and cancel nothing.
    patient, db = new_id(), app.state.db
    appointment = seed(patient_id=patient, doctor_id=new_id())
    with db.transaction() as session:
        session.add(User(id=patient, full_name="Back Again", role="patient", is_active=True, revision=3))
        session.flush()
        deactivation = broker.publish_event("identity.user.deactivated", deactivated(patient, "patient", 2))
        wait_until(lambda: lock_waiters(db) >= 1, what="the deactivation to wait for the newer event")
    wait_until(lambda: processed(db, deactivation.event_id), what="the deactivation to be applied")

    answer = client.get(f"/api/appointments/{appointment.id}/", headers=callers("patient", patient).headers)
    assert answer.json()["status"] == "pending"
    with db.transaction() as session:
        assert (session.get(User, patient).revision, session.get(User, patient).is_active) == (3, True)


def processed(db, event_id) -> bool:
    with db.transaction() as session:
        return session.get(ProcessedEvent, event_id) is not None
