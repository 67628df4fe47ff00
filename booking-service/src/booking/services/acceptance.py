"""The offered patient's booking (or reschedule): it holds under the offer's reservation and
accepts the offer.

Step 3 of ``offers``: the usual booking pays nothing for the waitlist (the offer is looked
for only when the timeslot turns out to be taken); an offered patient's hold is idempotent at
scheduling, and ``accept_offer`` runs in the transaction that stores the appointment.
"""

from __future__ import annotations

import uuid

from sqlalchemy import Connection, select, update

from booking.adapters.scheduling_client import Hold, SchedulingClient
from booking.domain import HOLDING_OFFER_STATES, EndReason, OfferState
from booking.errors import TimeslotRefused
from booking.models import WaitlistEntry, WaitlistOffer
from chassis.db import Database
from chassis.timezones import utcnow

_OFFERS = WaitlistOffer.__table__
_ENTRIES = WaitlistEntry.__table__


def hold_for_booking(
    db: Database,
    scheduling: SchedulingClient,
    *,
    patient_id: int,
    timeslot_id: int,
    doctor_id: int | None = None,
) -> tuple[Hold, uuid.UUID, bool]:
    """Hold for a booking or a reschedule (``doctor_id``: only a timeslot of that doctor): a fresh
    reservation, or the patient's own standing offer of the timeslot.

    Returns the hold, its reservation id and whether it is an offer's. The usual booking
    pays nothing for the waitlist: the offer is looked for only when the timeslot is taken.
    """
    reservation_id = uuid.uuid4()
    try:
        return (
            scheduling.hold(
                timeslot_id, reservation_id=reservation_id, patient_id=patient_id, doctor_id=doctor_id
            ),
            reservation_id,
            False,
        )
    except TimeslotRefused as refused:
        if refused.code != "timeslot_not_available":
            raise
        offered = _standing_offer(db, patient_id=patient_id, timeslot_id=timeslot_id)
        if offered is None:
            raise
    hold = scheduling.hold(timeslot_id, reservation_id=offered, patient_id=patient_id, doctor_id=doctor_id)
    return hold, offered, True


def _standing_offer(db: Database, *, patient_id: int, timeslot_id: int) -> uuid.UUID | None:
    with db.reading() as connection:
        return connection.scalar(
            select(_OFFERS.c.reservation_id)
            .join(_ENTRIES, _ENTRIES.c.id == _OFFERS.c.entry_id)
            .where(
                _OFFERS.c.timeslot_id == timeslot_id,
                _OFFERS.c.state == OfferState.OPEN,
                _OFFERS.c.expires_at > utcnow(),
                _ENTRIES.c.patient_id == patient_id,
            )
        )


def accept_offer(connection: Connection, reservation_id: uuid.UUID) -> None:
    """In the booking's transaction: the offer becomes the appointment and the entry ends.

    Serialised with ``expire_offers``, with leaving the waitlist and with the patient's other
    requests by the offer's row lock: exactly one wins; one that comes too late gets 409 like
    anyone else. The entry's row is locked first, as leaving the waitlist locks it (and then
    the offer), so the two wait for each other instead of deadlocking.
    """
    now = utcnow()
    offer_entry = select(_OFFERS.c.entry_id).where(_OFFERS.c.reservation_id == reservation_id)
    connection.execute(
        select(_ENTRIES.c.id).where(_ENTRIES.c.id == offer_entry.scalar_subquery()).with_for_update()
    )
    accepted = connection.execute(
        update(_OFFERS)
        .where(
            _OFFERS.c.reservation_id == reservation_id,
            _OFFERS.c.state == OfferState.OPEN,
            _OFFERS.c.expires_at > now,
        )
        .values(state=OfferState.ACCEPTED, closed_at=now)
        .returning(_OFFERS.c.entry_id)
    ).first()
    if accepted is None:
        state = connection.scalar(select(_OFFERS.c.state).where(_OFFERS.c.reservation_id == reservation_id))
        raise TimeslotRefused(409, "timeslot_not_available", _NOT_ACCEPTED[state == OfferState.ACCEPTED])
    connection.execute(
        update(_ENTRIES)
        .where(_ENTRIES.c.id == accepted.entry_id, _ENTRIES.c.ended_at.is_(None))
        .values(ended_at=now, end_reason=EndReason.BOOKED)
    )


_NOT_ACCEPTED = {
    True: "Your waitlist offer of this timeslot was accepted by another request of yours.",
    False: "Your waitlist offer of this timeslot has expired; it is no longer held for you.",
}


def release_unused_hold(
    db: Database, scheduling: SchedulingClient, timeslot_id: int, reservation_id: uuid.UUID, *, offered: bool
) -> None:
    """A booking or a move stored nothing under its hold: free the timeslot now, not at the hold's
    end, unless it was held for a waitlist offer that still uses it (``HOLDING_OFFER_STATES``):
    the offer stands (the patient may try again until it expires), or another request of the
    patient accepted it, and its appointment holds the timeslot now."""
    if offered:
        with db.reading() as connection:
            state = connection.scalar(
                select(_OFFERS.c.state).where(_OFFERS.c.reservation_id == reservation_id)
            )
        if state in HOLDING_OFFER_STATES:
            return
    scheduling.release(timeslot_id, reservation_id=reservation_id)
