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
from sqlalchemy import func, select, text, update

from booking.models import User, WaitlistEntry, WaitlistOffer, WaitlistOpening
from booking.services.offers import offer_openings
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


def wait_in_line(client, callers, doctor: int, patient_id: int, days: tuple[int, int] = (0, 3)) -> int:
    """``patient_id`` waits for any timeslot of ``doctor`` on the days ``days`` from today (the
    next days by default); their entry's id."""
    today = datetime.now(UTC).date()
    body = {
        "doctor_id": doctor,
        "date_from": str(today + timedelta(days=days[0])),
        "date_to": str(today + timedelta(days=days[1])),
    }
    entry = client.post("/api/waitlist/", json=body, headers=callers("patient", patient_id).headers)
    assert entry.status_code == 201, entry.text
    return entry.json()["id"]


def publish_new_timeslot(broker, scheduling, doctor: int, timeslot_id: int, starts_in=timedelta(days=1)):
    """A new timeslot of ``doctor`` at the stand-in, and its ``created`` event; the envelope."""
    scheduling.add_timeslot(timeslot_id, doctor, starts_in=starts_in)
    return broker.publish_event("scheduling.timeslot.created", timeslot_data(scheduling, timeslot_id))


def timeslot_data(scheduling, timeslot_id: int) -> dict:
    slot = scheduling.timeslots[timeslot_id]
    return {
        "timeslot_id": timeslot_id,
        "doctor_id": slot.doctor_id,
        "start_time": slot.start_time.isoformat(),
        "end_time": slot.end_time.isoformat(),
    }


def open_offers(db) -> dict[int, int]:
    """The open offers: timeslot id -> the patient it is offered to."""
    with db.transaction() as session:
        rows = session.execute(
            select(WaitlistOffer.timeslot_id, WaitlistEntry.patient_id)
            .join(WaitlistEntry, WaitlistEntry.id == WaitlistOffer.entry_id)
            .where(WaitlistOffer.state == "open")
        ).all()
    return dict(rows)


def openings_after(db, *envelopes) -> int | None:
    """How many openings wait for the worker once booking consumed these events (None before)."""
    with db.transaction() as session:
        ids = [envelope.event_id for envelope in envelopes]
        consumed = session.scalar(
            text("SELECT count(*) FROM processed_events WHERE event_id = ANY(:ids)"), {"ids": ids}
        )
        return (
            session.scalar(select(func.count()).select_from(WaitlistOpening))
            if consumed == len(ids)
            else None
        )


def worker_done_with(db, *envelopes) -> bool:
    """booking consumed these events and its waitlist worker is done with every opening."""
    return openings_after(db, *envelopes) == 0


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


# -- one patient, many entries: offers go to patients, not to entries --------------------------


def test_a_patient_with_three_overlapping_entries_gets_one_offer_and_the_other_timeslots_go_on(
    app, client, broker, scheduling, doctor, new_id, callers, wait_until
):
    # Each entry of one patient used to get its own offer: a patient joining many overlapping
    # ranges held as many of the doctor's timeslots at once, hidden from everyone else.
    db = app.state.db
    many, other = new_id(), new_id()
    for days in [(0, 3), (0, 4), (1, 2)]:
        wait_in_line(client, callers, doctor, many, days)
    wait_in_line(client, callers, doctor, other)  # in line after all three
    timeslots = [new_id(), new_id(), new_id()]

    created = [publish_new_timeslot(broker, scheduling, doctor, timeslot_id) for timeslot_id in timeslots]
    wait_until(
        lambda: openings_after(db, *created) == 1 and len(open_offers(db)) == 2, what="two offers, one each"
    )
    offers = open_offers(db)
    assert sorted(offers.values()) == sorted([many, other]), offers
    # The third waits for the one patient who still wants it, unheld (free to book meanwhile):
    # it is theirs to be offered once their offer of this doctor ends.
    assert {t for t in timeslots if scheduling.holder_of(t) is not None} == set(offers)
    [third] = set(timeslots) - set(offers)
    mine = next(timeslot for timeslot, patient in offers.items() if patient == many)
    headers = callers("patient", many).headers
    booked = client.post("/api/appointments/", json={"timeslot_id": mine}, headers=headers)
    assert booked.status_code == 201, booked.text
    wait_until(lambda: open_offers(db).get(third) == many, what="the third offered to them in turn")


def test_a_timeslot_whose_offer_the_patient_never_heard_of_is_offered_to_them_when_free_again(
    app, client, broker, scheduling, doctor, new_id, callers, wait_until
):
    # An offer withdrawn because scheduling refused its hold (someone held the timeslot first)
    # was never announced: the patient did not let the timeslot go.
    patient, timeslot_id = new_id(), new_id()
    wait_in_line(client, callers, doctor, patient)
    scheduling.add_timeslot(timeslot_id, doctor)
    scheduling.timeslots[timeslot_id].reservation_id = str(uuid.uuid4())  # held by another booking
    created = broker.publish_event("scheduling.timeslot.created", timeslot_data(scheduling, timeslot_id))
    wait_until(lambda: worker_done_with(app.state.db, created), what="the refused offer settled")
    assert open_offers(app.state.db) == {}

    other_reservation = scheduling.holder_of(timeslot_id)
    scheduling.timeslots[timeslot_id].reservation_id = None  # that booking gave it up
    given_up = {"reservation_id": other_reservation, "reason": "hold_released"}
    broker.publish_event("scheduling.timeslot.released", timeslot_data(scheduling, timeslot_id) | given_up)
    wait_until(lambda: open_offers(app.state.db) == {timeslot_id: patient}, what="the timeslot offered")


@pytest.mark.parametrize("ending", ["expired", "withdrawn"])
def test_a_timeslot_a_patient_let_go_is_not_offered_to_them_again_through_another_entry(
    app, client, broker, scheduling, doctor, new_id, callers, wait_until, ending
):
    # The exclusion was per entry: an offer that expired passed to the same patient's next
    # entry, again and again. Letting it go (expiry, or leaving the entry) is the patient's.
    many, other, timeslot_id = new_id(), new_id(), new_id()
    first_entry = wait_in_line(client, callers, doctor, many, (0, 3))
    for days in [(0, 4), (1, 2)]:
        wait_in_line(client, callers, doctor, many, days)
    wait_in_line(client, callers, doctor, other)
    created = publish_new_timeslot(broker, scheduling, doctor, timeslot_id)
    wait_until(lambda: worker_done_with(app.state.db, created), what="the first offer")
    assert open_offers(app.state.db) == {timeslot_id: many}
    reservation = scheduling.holder_of(timeslot_id)

    if ending == "expired":
        with app.state.db.transaction() as session:
            session.execute(
                update(WaitlistOffer)
                .where(WaitlistOffer.reservation_id == uuid.UUID(reservation))
                .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
            )
    else:
        headers = callers("patient", many).headers
        assert client.delete(f"/api/waitlist/{first_entry}/", headers=headers).status_code == 204
    wait_until(lambda: scheduling.holder_of(timeslot_id) is None, what="the offer's hold released")
    # scheduling's answer to that release: the timeslot is bookable again.
    released = broker.publish_event(
        "scheduling.timeslot.released",
        timeslot_data(scheduling, timeslot_id) | {"reservation_id": reservation, "reason": "hold_released"},
    )
    wait_until(lambda: worker_done_with(app.state.db, released), what="the released timeslot offered")

    assert open_offers(app.state.db) == {timeslot_id: other}
    hold = scheduling.holds[-1]
    assert hold["patient_id"] == other
    assert scheduling.holder_of(timeslot_id) == hold["reservation_id"]


def test_two_workers_at_once_give_one_patient_one_offer_of_a_doctor(
    app, client, broker, scheduling, doctor, new_id, callers, wait_until
):
    # Two workers (replicas) each take one opening of the doctor; each finds a different entry
    # of the same patient first in line for its timeslot. Both entries' rows are locked while
    # the two choose (as a request leaving the waitlist would), so both are between choosing
    # and committing at once: only one may offer the patient anything.
    many = new_id()
    today_to_tomorrow = wait_in_line(client, callers, doctor, many, (0, 1))
    tomorrow_on = wait_in_line(client, callers, doctor, many, (1, 3))
    soon, later = new_id(), new_id()  # tomorrow (both entries cover it); the day after (the second)
    db = app.state.db
    with ThreadPoolExecutor(max_workers=1) as pool:
        with db.transaction() as session:
            session.execute(
                select(WaitlistEntry.id)
                .where(WaitlistEntry.id.in_([today_to_tomorrow, tomorrow_on]))
                .with_for_update()
            )
            created = [
                publish_new_timeslot(broker, scheduling, doctor, soon),
                publish_new_timeslot(broker, scheduling, doctor, later, starts_in=timedelta(days=2)),
            ]
            wait_until(lambda: openings_after(db, *created) == 2, what="both openings noticed")
            wait_until(lambda: lock_waiters(db) >= 1, what="the app's worker to wait for an entry")
            second_worker = pool.submit(offer_openings, db, app.state.scheduling, offer_minutes=15)
            wait_until(lambda: lock_waiters(db) >= 2, what="a second worker to wait too")
        second_worker.result(timeout=15)
        # One offered; the other waits (unheld) for the patient's offer of this doctor to end.
        wait_until(
            lambda: openings_after(db, *created) == 1 and len(open_offers(db)) == 1,
            what="both timeslots settled",
        )

    assert list(open_offers(db).values()) == [many]
    assert len([t for t in (soon, later) if scheduling.holder_of(t) is not None]) == 1


@pytest.mark.parametrize("day", [1899849600, "1899849600", "2030-3-4", "2030-03-04T00:00:00Z"])
def test_a_range_day_that_is_not_an_iso_date_is_a_422(client, doctor, new_id, callers, day):
    # A JSON number, or a string of digits, was read as a Unix timestamp (a day in 2030).
    body = {"doctor_id": doctor, "date_from": day, "date_to": "2030-03-20"}
    response = client.post("/api/waitlist/", json=body, headers=callers("patient", new_id()).headers)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == "date_from"
