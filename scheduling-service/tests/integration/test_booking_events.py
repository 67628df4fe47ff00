"""booking's appointment events, through RabbitMQ, on the timeslots (docs/booking-protocol.md)."""

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from sqlalchemy import delete, func, select, update

from chassis.testkit import lock_waiters
from scheduling.models import CancelledReservation, Timeslot
from scheduling.services import reservations


def test_a_booked_event_turns_the_hold_into_a_booking(broker, schedule, consumed, doctor, patient):
    timeslot = schedule.publish(doctor, 73)
    reservation = uuid.uuid4()
    schedule.hold(timeslot, patient, reservation)
    consumed(broker.booked(timeslot, reservation, patient[0]))
    # Booked, not merely held: releasing the hold no longer frees it.
    schedule.release(timeslot, patient, reservation)
    assert not schedule.is_free(timeslot, patient)


def test_a_redelivered_event_changes_nothing(broker, schedule, consumed, doctor, patient, new_id):
    timeslot = schedule.publish(doctor, 74)
    first, second = uuid.uuid4(), uuid.uuid4()
    schedule.hold(timeslot, patient, first)
    cancellation = broker.cancelled(timeslot, first, patient[0])
    consumed(cancellation)
    schedule.hold(timeslot, patient, second)
    consumed(broker.booked(timeslot, second, patient[0]))

    broker.cancelled(timeslot, first, patient[0], event_id=cancellation)
    # One consumer handles the queue in order: once a later event is processed, the duplicate was too.
    consumed(broker.user_registered(new_id(), role="patient"))
    assert not schedule.is_free(timeslot, patient)


def test_a_cancellation_frees_the_timeslot_for_booking_again(
    broker, schedule, consumed, doctor, patient, wait_until
):
    timeslot = schedule.publish(doctor, 75)
    reservation = uuid.uuid4()
    schedule.hold(timeslot, patient, reservation)
    consumed(broker.booked(timeslot, reservation, patient[0]))
    assert not schedule.is_free(timeslot, patient)
    broker.cancelled(timeslot, reservation, patient[0])
    wait_until(lambda: schedule.is_free(timeslot, patient), what="the timeslot to be free again")
    schedule.hold(timeslot, patient, uuid.uuid4())


def test_a_stale_cancellation_never_frees_a_timeslot_booked_again(
    broker, schedule, consumed, doctor, patient
):
    timeslot = schedule.publish(doctor, 76)
    first, second = uuid.uuid4(), uuid.uuid4()
    schedule.hold(timeslot, patient, first)
    consumed(broker.cancelled(timeslot, first, patient[0]))
    schedule.hold(timeslot, patient, second)
    consumed(broker.booked(timeslot, second, patient[0]))
    consumed(broker.cancelled(timeslot, first, patient[0]))
    assert not schedule.is_free(timeslot, patient)


def test_a_booked_event_arriving_after_its_cancellation_does_not_book(
    broker, schedule, consumed, doctor, patient
):
    timeslot = schedule.publish(doctor, 78)
    reservation = uuid.uuid4()
    consumed(broker.cancelled(timeslot, reservation, patient[0]))
    consumed(broker.booked(timeslot, reservation, patient[0]))
    assert schedule.is_free(timeslot, patient)


def test_a_booked_event_books_an_available_timeslot_because_booking_holds_the_truth(
    broker, schedule, consumed, doctor, patient
):
    timeslot = schedule.publish(doctor, 79)
    consumed(broker.booked(timeslot, uuid.uuid4(), patient[0]))
    assert not schedule.is_free(timeslot, patient)


def test_a_booked_event_for_a_timeslot_held_by_another_reservation_leaves_it(
    broker, schedule, consumed, doctor, patient
):
    timeslot = schedule.publish(doctor, 80)
    holder = uuid.uuid4()
    schedule.hold(timeslot, patient, holder)
    consumed(broker.booked(timeslot, uuid.uuid4(), patient[0]))
    # Still held by its holder, who can release it.
    schedule.release(timeslot, patient, holder)
    assert schedule.is_free(timeslot, patient)


def test_a_booked_event_racing_its_cancellation_on_a_free_timeslot_never_books_it(
    db, schedule, doctor, patient, wait_until
):
    # Two replicas apply one appointment's events at once, its hold already gone (freed when
    # booking stored nothing for it in time): the cancellation's transaction has remembered the
    # reservation and not committed yet when the booked event looks for it. The booked event
    # must wait for that commit and then leave the timeslot free, not book it for a cancelled
    # reservation (found by a five-minute soak).
    timeslot = schedule.publish(doctor, 81)
    reservation = uuid.uuid4()
    with ThreadPoolExecutor(max_workers=1) as pool:
        with db.transaction() as cancelling:
            reservations.free_for_reservation(cancelling, timeslot["id"], reservation)
            booking = pool.submit(_apply_booked, db, timeslot["id"], reservation)
            wait_until(lambda: booking.done() or lock_waiters(db), what="the booked event to finish or wait")
        booking.result(timeout=10)
    assert schedule.is_free(timeslot, patient)


def test_the_retention_job_forgets_a_cancelled_reservation_once_its_timeslot_is_over_and_it_is_old(
    db, broker, schedule, consumed, messaging_client, doctor, patient
):
    inbox_days = messaging_client.app.state.settings.inbox_retention_days
    timeslots = {name: schedule.publish(doctor, 82 + n) for n, name in enumerate(["ended", "gone", "ahead"])}
    timeslots["ended recently"] = schedule.publish(doctor, 86)
    cancelled = {name: uuid.uuid4() for name in timeslots}
    for name, timeslot in timeslots.items():
        consumed(broker.cancelled(timeslot, cancelled[name], patient[0]))
    ids = {name: timeslot["id"] for name, timeslot in timeslots.items()}
    with db.transaction() as session:
        old = [cancelled[name] for name in ("ended", "gone", "ahead")]
        session.execute(
            update(CancelledReservation)
            .where(CancelledReservation.reservation_id.in_(old))
            .values(cancelled_at=func.now() - timedelta(days=inbox_days, hours=1))
        )
        past = timedelta(days=200)  # the doctor's own timeslots: no overlap with another one
        session.execute(
            update(Timeslot)
            .where(Timeslot.id.in_([ids["ended"], ids["ended recently"]]))
            .values(start_time=Timeslot.start_time - past, end_time=Timeslot.end_time - past)
        )
        session.execute(delete(Timeslot).where(Timeslot.id == ids["gone"]))

    messaging_client.app.state.retention.run_once()

    with db.transaction() as session:
        kept = session.scalars(
            select(CancelledReservation.reservation_id).where(
                CancelledReservation.reservation_id.in_(cancelled.values())
            )
        ).all()
    assert set(kept) == {cancelled["ahead"], cancelled["ended recently"]}
    # The one still remembered still keeps a late booked event from booking its timeslot.
    consumed(broker.booked(timeslots["ahead"], cancelled["ahead"], patient[0]))
    assert schedule.is_free(timeslots["ahead"], patient)


def _apply_booked(db, timeslot_id: int, reservation: uuid.UUID) -> None:
    with db.transaction() as session:
        reservations.book_for_reservation(session, timeslot_id, reservation)
