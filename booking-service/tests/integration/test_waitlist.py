"""The waitlist against the scheduling stand-in: an opening becomes an offer held under the
offer's reservation, announced as its contract says; the offered patient's booking converts
that hold; an expired offer's hold is released (docs/booking-protocol.md, "Waitlist")."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select, update

from booking.models import User, WaitlistEntry, WaitlistOffer
from chassis.testkit import lock_waiters


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
    entry_id = wait_in_line(client, callers, doctor, patient_id)
    publish_new_timeslot(broker, scheduling, doctor, timeslot_id)
    wait_until(lambda: offer_of(client, callers, patient_id), what="the offer")
    return patient_id, timeslot_id, entry_id


def wait_in_line(client, callers, doctor: int, patient_id: int) -> int:
    """``patient_id`` waits for any timeslot of ``doctor`` in the next days; their entry's id."""
    today = datetime.now(UTC).date()
    body = {"doctor_id": doctor, "date_from": str(today), "date_to": str(today + timedelta(days=3))}
    entry = client.post("/api/waitlist/", json=body, headers=callers("patient", patient_id).headers)
    assert entry.status_code == 201, entry.text
    return entry.json()["id"]


def publish_new_timeslot(broker, scheduling, doctor: int, timeslot_id: int) -> None:
    scheduling.add_timeslot(timeslot_id, doctor, starts_in=timedelta(days=1))
    slot = scheduling.timeslots[timeslot_id]
    data = {
        "timeslot_id": timeslot_id,
        "doctor_id": doctor,
        "start_time": slot.start_time.isoformat(),
        "end_time": slot.end_time.isoformat(),
    }
    broker.publish_event("scheduling.timeslot.created", data)


@contextmanager
def offer_row_locked(db, reservation: str) -> Iterator[None]:
    """The row of the offer of ``reservation`` locked (as a concurrent request would) while inside."""
    with db.transaction() as session:
        offer = select(WaitlistOffer.id).where(WaitlistOffer.reservation_id == uuid.UUID(reservation))
        session.execute(offer.with_for_update())
        yield


def offer_of(client, callers, patient_id: int) -> dict | None:
    """The offer the patient's waitlist shows (None without one)."""
    headers = callers("patient", patient_id).headers
    entries = client.get("/api/waitlist/me/", headers=headers).json()["results"]
    return entries and entries[0]["offer"]


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


def test_two_bookings_of_one_offer_at_once_book_it_once_and_its_hold_stays(
    app, client, scheduling, offered, callers, wait_until
):
    # A double submit: both requests find the timeslot held for the patient's offer and hold
    # under it; one accepts the offer and stores the appointment. The other must not release
    # the hold that appointment now owns (scheduling may not have applied its booked event yet).
    patient_id, timeslot_id, _ = offered
    reservation, db = scheduling.holder_of(timeslot_id), app.state.db
    headers = callers("patient", patient_id).headers

    def book():
        return client.post("/api/appointments/", json={"timeslot_id": timeslot_id}, headers=headers)

    with ThreadPoolExecutor(max_workers=2) as pool:
        with offer_row_locked(db, reservation):  # until both bookings wait for it
            answers = [pool.submit(book) for _ in range(2)]
            wait_until(
                lambda: lock_waiters(db) >= 2 or any(a.done() for a in answers),
                what="both bookings to wait for the offer",
            )
        responses = [a.result(timeout=10) for a in answers]

    assert sorted(r.status_code for r in responses) == [201, 409], [r.text for r in responses]
    assert scheduling.holder_of(timeslot_id) == reservation
    assert not [r for r in scheduling.releases if r["reservation_id"] == reservation]
    refused = next(r for r in responses if r.status_code == 409).json()
    assert refused["code"] == "timeslot_not_available"
    assert "accepted by another request of yours" in refused["detail"]


def test_an_offer_booked_before_its_hold_was_answered_keeps_its_hold(
    client, broker, scheduling, doctor, new_id, callers, wait_until
):
    # The offer is on the patient's waitlist as soon as it is stored, before the worker has
    # its hold answered; the patient books it in that moment. The worker must leave the hold to
    # the appointment, not take "no longer open" for "nobody uses it".
    patient_id, timeslot_id = new_id(), new_id()
    wait_in_line(client, callers, doctor, patient_id)
    booked = []

    def patient_books(reservation: str) -> None:
        assert offer_of(client, callers, patient_id)["timeslot_id"] == timeslot_id
        booked.append(
            client.post(
                "/api/appointments/",
                json={"timeslot_id": timeslot_id},
                headers=callers("patient", patient_id).headers,
            )
        )

    scheduling.while_holding[timeslot_id] = patient_books
    publish_new_timeslot(broker, scheduling, doctor, timeslot_id)
    wait_until(lambda: booked, what="the patient's booking during the offer's hold")
    reservation = scheduling.holder_of(timeslot_id)

    assert booked[0].status_code == 201, booked[0].text
    assert booked[0].json()["timeslot_id"] == timeslot_id
    waiting = client.get("/api/waitlist/me/", headers=callers("patient", patient_id).headers)
    assert waiting.json()["count"] == 0  # the entry ended with the booking
    assert reservation is not None
    assert not [r for r in scheduling.releases if r["reservation_id"] == reservation]


def test_leaving_the_waitlist_while_booking_its_offer_never_fails_on_a_deadlock(
    app, client, scheduling, offered, callers, wait_until
):
    # The booking accepts the offer (the offer's row, then the entry's) while the patient leaves
    # the waitlist in another tab (the entry's row, then the offer's). Whatever the order, one
    # wins and the other gets its ordinary answer: never a 500 from a deadlock.
    patient_id, timeslot_id, entry_id = offered
    reservation = scheduling.holder_of(timeslot_id)
    headers = callers("patient", patient_id).headers
    db = app.state.db
    with ThreadPoolExecutor(max_workers=2) as pool:
        with offer_row_locked(db, reservation):  # the booking waits for it first
            booking = pool.submit(
                client.post, "/api/appointments/", json={"timeslot_id": timeslot_id}, headers=headers
            )
            wait_until(lambda: lock_waiters(db) >= 1 or booking.done(), what="the booking to wait")
            leaving = pool.submit(client.delete, f"/api/waitlist/{entry_id}/", headers=headers)
            wait_until(lambda: lock_waiters(db) >= 2 or leaving.done(), what="the leaving to wait")
        booked, left = booking.result(timeout=15), leaving.result(timeout=15)

    assert (booked.status_code, left.status_code) in {(201, 404), (409, 204)}, (booked.text, left.text)
    with db.transaction() as session:
        entry = session.get(WaitlistEntry, entry_id)
        assert entry.end_reason == ("booked" if booked.status_code == 201 else "left")


def test_an_offer_withdrawn_before_its_hold_was_answered_passes_the_timeslot_to_the_next_in_line(
    client, broker, scheduling, doctor, new_id, callers, wait_until
):
    # The first patient in line leaves while the worker's hold for their offer is being
    # answered: the hold is released and the timeslot goes to the next patient in line. (Its
    # released event could come before the worker is done with the opening, and find that
    # opening still there: the opening must not be dropped then.)
    first, second, timeslot_id = new_id(), new_id(), new_id()
    first_entry = wait_in_line(client, callers, doctor, first)
    wait_in_line(client, callers, doctor, second)
    left = []

    def first_leaves(reservation: str) -> None:
        headers = callers("patient", first).headers
        left.append(client.delete(f"/api/waitlist/{first_entry}/", headers=headers).status_code)

    scheduling.while_holding[timeslot_id] = first_leaves
    publish_new_timeslot(broker, scheduling, doctor, timeslot_id)

    offer = wait_until(lambda: offer_of(client, callers, second), what="the offer to the second in line")
    assert left == [204]
    assert offer["timeslot_id"] == timeslot_id
    hold = scheduling.holds[-1]
    assert hold["patient_id"] == second
    assert scheduling.holder_of(timeslot_id) == hold["reservation_id"]
