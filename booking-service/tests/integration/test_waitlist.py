"""The waitlist against the scheduling stand-in: an opening becomes an offer held under the
offer's reservation, announced as its contract says; the offered patient's booking converts
that hold; an expired offer's hold is released (docs/booking-protocol.md, "Waitlist")."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import update

from booking.models import User, WaitlistOffer


@pytest.fixture
def doctor(app, new_id) -> int:
    doctor_id = new_id()
    with app.state.db.transaction() as session:
        session.add(User(id=doctor_id, full_name="Dora Doctor", role="doctor", is_active=True, revision=1))
    return doctor_id


@pytest.fixture
def offered(client, broker, scheduling, doctor, new_id, callers, wait_until):
    """A patient in line, and a new timeslot of the doctor that the waitlist offered them."""
    patient_id, timeslot_id = new_id(), new_id()
    today = datetime.now(UTC).date()
    body = {"doctor_id": doctor, "date_from": str(today), "date_to": str(today + timedelta(days=3))}
    entry = client.post("/api/waitlist/", json=body, headers=callers("patient", patient_id).headers)
    assert entry.status_code == 201, entry.text
    scheduling.add_timeslot(timeslot_id, doctor, starts_in=timedelta(days=1))
    slot = scheduling.timeslots[timeslot_id]
    data = {
        "timeslot_id": timeslot_id,
        "doctor_id": doctor,
        "start_time": slot.start_time.isoformat(),
        "end_time": slot.end_time.isoformat(),
    }
    broker.publish_event("scheduling.timeslot.created", data)

    def offer() -> dict | None:
        entries = client.get("/api/waitlist/me/", headers=callers("patient", patient_id).headers).json()[
            "results"
        ]
        return entries and entries[0]["offer"]

    wait_until(offer, what="the offer")
    return patient_id, timeslot_id, entry.json()["id"]


def test_an_offer_holds_the_timeslot_under_its_own_reservation_and_is_announced(
    broker, scheduling, offered, wait_until
):
    patient_id, timeslot_id, entry_id = offered
    hold = scheduling.holds[-1]

    assert scheduling.holder_of(timeslot_id) == hold["reservation_id"]
    assert hold["patient_id"] == patient_id
    assert 15 * 60 < hold["hold_seconds"] < 15 * 60 + 120  # the offer's time, plus scheduling's grace
    events = wait_until(lambda: broker.published("booking.waitlist.offered"), what="the offered event")
    assert len(events) == 1  # checked against its contract on arrival (chassis.testkit.Broker)
    assert events[0]["data"]["patient_id"] == patient_id
    assert events[0]["data"]["entry"]["id"] == entry_id
    assert events[0]["data"]["entry"]["offer"]["timeslot_id"] == timeslot_id


def test_the_offered_patient_books_under_the_offers_reservation_and_others_get_409(
    client, scheduling, offered, new_id, callers
):
    patient_id, timeslot_id, _ = offered
    offer_reservation = scheduling.holder_of(timeslot_id)

    other = client.post(
        "/api/appointments/", json={"timeslot_id": timeslot_id}, headers=callers("patient", new_id()).headers
    )
    assert other.status_code == 409
    mine = client.post(
        "/api/appointments/",
        json={"timeslot_id": timeslot_id},
        headers=callers("patient", patient_id).headers,
    )

    assert mine.status_code == 201, mine.text
    assert scheduling.holder_of(timeslot_id) == offer_reservation
    assert (
        client.get("/api/waitlist/me/", headers=callers("patient", patient_id).headers).json()["count"] == 0
    )
    assert not [r for r in scheduling.releases if r["reservation_id"] == offer_reservation]


def test_an_expired_offer_releases_its_hold(app, client, scheduling, offered, callers, wait_until):
    patient_id, timeslot_id, _ = offered
    reservation = scheduling.holder_of(timeslot_id)
    with app.state.db.transaction() as session:
        session.execute(
            update(WaitlistOffer)
            .where(WaitlistOffer.reservation_id == uuid.UUID(reservation))
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )

    wait_until(lambda: scheduling.holder_of(timeslot_id) is None, what="the expired offer's hold released")
    entries = client.get("/api/waitlist/me/", headers=callers("patient", patient_id).headers).json()[
        "results"
    ]
    assert entries[0]["offer"] is None  # still waiting, without an offer
    late = client.post(
        "/api/appointments/",
        json={"timeslot_id": timeslot_id},
        headers=callers("patient", patient_id).headers,
    )
    assert late.status_code == 201  # free again: booked like anyone would, under a new reservation
    assert scheduling.holder_of(timeslot_id) != reservation


def test_an_offer_booked_with_an_idempotency_key_is_booked_once_with_its_history(
    client, scheduling, offered, callers
):
    patient_id, timeslot_id, _ = offered
    offer_reservation = scheduling.holder_of(timeslot_id)
    headers = callers("patient", patient_id).headers | {"Idempotency-Key": str(uuid.uuid4())}
    accepted = REGISTRY.get_sample_value("clinic_waitlist_offers_total", {"outcome": "accepted"}) or 0

    first = client.post("/api/appointments/", json={"timeslot_id": timeslot_id}, headers=headers)
    again = client.post("/api/appointments/", json={"timeslot_id": timeslot_id}, headers=headers)

    assert first.status_code == again.status_code == 201, first.text
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert scheduling.holder_of(timeslot_id) == offer_reservation
    assert REGISTRY.get_sample_value("clinic_waitlist_offers_total", {"outcome": "accepted"}) == accepted + 1
    history = client.get(f"/api/appointments/{first.json()['id']}/history/", headers=headers)
    assert history.status_code == 200, history.text
    assert [(e["action"], e["to_status"], e["to_timeslot_id"]) for e in history.json()] == [
        ("booked", "pending", timeslot_id)
    ]
