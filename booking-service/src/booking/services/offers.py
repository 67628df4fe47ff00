"""Offering timeslots to the waitlist: the protocol between booking's waitlist and scheduling.

1. ``scheduling.timeslot.released`` or ``created`` → ``note_bookable`` records an opening
   when a waiting entry covers the timeslot (in the event's inbox transaction).
2. ``offer_openings`` gives each opening to the earliest waiting entry that covers it and
   whose patient has no open offer of this doctor and never let this timeslot go (on any of
   their entries: a patient, not an entry, is the unit, however many ranges they joined): the
   offer is stored first, then the timeslot is held at scheduling under the offer's
   reservation id until the offer's expiry (plus ``HOLD_GRACE``); ``booking.waitlist.offered``
   goes out once the hold stands.
3. The offered patient's booking (``hold_for_booking``/``accept_offer``) holds under the
   same reservation id (idempotent at scheduling) and accepts the offer in the transaction
   that stores the appointment, which ends the entry. Everyone else's hold gets 409.
4. ``expire_offers`` closes offers past their expiry and releases their holds; the released
   event brings the timeslot back to step 1, for the next entry in line.

No timeslot stays held for nobody: every hold of an offer is released by booking when the
offer ends without an appointment (expired, withdrawn; ``HOLDING_OFFER_STATES``), and if
booking cannot (scheduling unreachable, booking down), scheduling's hold sweeper frees it at
the hold's end, since booking stores no appointment for its reservation.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from booking import events
from booking.adapters import metrics
from booking.adapters.scheduling_client import SchedulingClient
from booking.domain import HOLDING_OFFER_STATES, OfferState, hold_seconds, offer_expiry
from booking.errors import SchedulingUnavailable, TimeslotRefused
from booking.models import User, WaitlistEntry, WaitlistOffer, WaitlistOpening
from booking.services.waitlist import view_of
from chassis.db import Database
from chassis.timezones import utcnow

log = logging.getLogger("booking.waitlist")

_OFFERS = WaitlistOffer.__table__
_ENTRIES = WaitlistEntry.__table__

# The advisory lock space of choosing who gets a doctor's next offer (one lock per doctor; see
# ``_next_offer``). reservations.RESERVATION_LOCKS is 7301; policy's per-patient lock uses the
# one-key space, which never overlaps the two-key one.
DOCTOR_OFFER_LOCKS = 7302
# An offer that ended without an appointment: its patient let the timeslot go if told of it.
_LET_GO = tuple(state for state in OfferState if state not in HOLDING_OFFER_STATES)
# The entries of a candidate entry's patient, the candidate included (``_their_offer``).
_THEIRS = aliased(WaitlistEntry)


def _covers(start_time: datetime) -> list:
    return [
        WaitlistEntry.ended_at.is_(None),
        WaitlistEntry.range_start <= start_time,
        WaitlistEntry.range_end > start_time,
    ]


def note_bookable(
    session: Session, *, timeslot_id: int, doctor_id: int, start_time: datetime, end_time: datetime
) -> None:
    """A timeslot became bookable: remember it as an opening if someone waits for it."""
    if start_time <= utcnow():
        return
    waiting = session.scalar(
        select(exists().where(WaitlistEntry.doctor_id == doctor_id, *_covers(start_time)))
    )
    if waiting:
        session.execute(
            insert(WaitlistOpening)
            .values(timeslot_id=timeslot_id, doctor_id=doctor_id, start_time=start_time, end_time=end_time)
            .on_conflict_do_nothing(index_elements=[WaitlistOpening.timeslot_id])
        )


def forget_released_hold(session: Session, reservation_id: uuid.UUID) -> None:
    """scheduling freed a timeslot held under ``reservation_id``: an open offer of it is over."""
    session.execute(
        update(WaitlistOffer)
        .where(WaitlistOffer.reservation_id == reservation_id, WaitlistOffer.state == OfferState.OPEN)
        .values(state=OfferState.EXPIRED, closed_at=utcnow())
    )


def expire_offers(db: Database, scheduling: SchedulingClient, *, max_offers: int = 100) -> int:
    """Close the offers past their expiry and release their holds; returns how many expired."""
    expired = 0
    for _ in range(max_offers):
        now = utcnow()
        with db.transaction() as session:
            offer = session.scalars(
                select(WaitlistOffer)
                .where(WaitlistOffer.state == OfferState.OPEN, WaitlistOffer.expires_at <= now)
                .order_by(WaitlistOffer.expires_at)
                .limit(1)
                .with_for_update(skip_locked=True)
            ).first()
            if offer is None:
                break
            offer.state = OfferState.EXPIRED
            offer.closed_at = now
            timeslot_id, reservation_id = offer.timeslot_id, offer.reservation_id
        expired += 1
        metrics.WAITLIST_OFFERS.labels("expired").inc()
        log.info("waitlist offer of timeslot %s expired", timeslot_id)
        scheduling.release(timeslot_id, reservation_id=reservation_id)
    return expired


@dataclass(frozen=True, slots=True)
class _Pending:
    offer_id: int
    timeslot_id: int
    reservation_id: uuid.UUID
    patient_id: int
    expires_at: datetime


def offer_openings(
    db: Database, scheduling: SchedulingClient, *, offer_minutes: float, max_openings: int = 100
) -> int:
    """Offer each opening to the next entry in line; returns how many offers now stand."""
    tried: set[int] = set()
    offered = 0
    for _ in range(max_openings):
        try:
            pending, timeslot_id = _next_offer(db, tried, offer_minutes)
        except IntegrityError:
            continue  # a one-open-offer index fired (a race the doctor's lock did not cover): again
        if timeslot_id is None:
            break
        tried.add(timeslot_id)
        if pending is None:
            continue
        try:
            scheduling.hold(
                pending.timeslot_id,
                reservation_id=pending.reservation_id,
                patient_id=pending.patient_id,
                hold_seconds=hold_seconds(pending.expires_at, utcnow()),
            )
        except SchedulingUnavailable:
            break  # the offer and its opening stay: the next pass holds again (idempotent)
        except TimeslotRefused as exc:  # taken, gone or started (or the patient is its doctor)
            _settle_refused(db, pending, keep_opening=exc.code == "cannot_book_own_timeslot")
            continue
        offered += _settle_held(db, scheduling, pending)
    return offered


def _next_offer(db: Database, tried: set[int], offer_minutes: float) -> tuple[_Pending | None, int | None]:
    """Lock the next opening and find or make its offer (stored before the hold is asked for).

    The opening's row lock makes one worker (of any replica) decide each timeslot. Choosing the
    entry also takes the doctor's advisory lock until the offer is committed: "the patient has
    no open offer of this doctor" spans other timeslots, which other workers may be offering at
    once, and no unique index can say it (offers name an entry). The choice is the lock's next
    statement, so under READ COMMITTED it sees every offer a previous holder committed.
    """
    now = utcnow()
    with db.transaction() as session:
        opening = session.scalars(
            select(WaitlistOpening)
            .where(WaitlistOpening.timeslot_id.not_in(tried))
            .order_by(WaitlistOpening.noticed_at)
            .limit(1)
            .with_for_update(skip_locked=True)
        ).first()
        if opening is None:
            return None, None
        offer = session.scalar(
            select(WaitlistOffer).where(
                WaitlistOffer.timeslot_id == opening.timeslot_id, WaitlistOffer.state == OfferState.OPEN
            )
        )
        if offer is None:
            entry = None
            if opening.start_time > now:
                session.execute(
                    select(
                        func.pg_advisory_xact_lock(DOCTOR_OFFER_LOCKS, func.hashtext(str(opening.doctor_id)))
                    )
                )
                entry = _next_entry(session, opening)
            if entry is None:
                if opening.start_time > now and _waits_behind_an_offer(session, opening):
                    # Its patient may have it once their offer of this doctor ends: tried again
                    # on a later pass, after the other openings (to the back of the line).
                    opening.noticed_at = now
                else:
                    session.delete(opening)  # nobody (else) waits for it: it stays free
                return None, opening.timeslot_id
            offer = WaitlistOffer(
                entry_id=entry.id,
                timeslot_id=opening.timeslot_id,
                reservation_id=uuid.uuid4(),
                start_time=opening.start_time,
                end_time=opening.end_time,
                expires_at=offer_expiry(now, offer_minutes),
            )
            session.add(offer)
            session.flush()
        patient_id = session.scalar(
            select(WaitlistEntry.patient_id).where(WaitlistEntry.id == offer.entry_id)
        )
        return (
            _Pending(offer.id, offer.timeslot_id, offer.reservation_id, patient_id, offer.expires_at),
            opening.timeslot_id,
        )


def _their_offer(*conditions: Any) -> Any:
    """An offer on any entry of the candidate entry's patient matching ``conditions``."""
    return exists().where(
        WaitlistOffer.entry_id == _THEIRS.id, _THEIRS.patient_id == WaitlistEntry.patient_id, *conditions
    )


def _waiting_for(opening: WaitlistOpening) -> list:
    """Waiting entries that may get the opening but for the one-open-offer-per-doctor rule: they
    cover it, their patient is active, is not its doctor, and never let this timeslot go."""
    return [
        WaitlistEntry.doctor_id == opening.doctor_id,
        *_covers(opening.start_time),
        WaitlistEntry.patient_id != opening.doctor_id,
        ~_their_offer(
            WaitlistOffer.timeslot_id == opening.timeslot_id,
            WaitlistOffer.state.in_(_LET_GO),
            WaitlistOffer.announced.is_(True),
        ),
        ~exists().where(User.id == WaitlistEntry.patient_id, User.is_active.is_(False)),
    ]


def _holding_an_offer_of(opening: WaitlistOpening) -> Any:  # of the opening's doctor, now
    return _their_offer(WaitlistOffer.state == OfferState.OPEN, _THEIRS.doctor_id == opening.doctor_id)


def _next_entry(session: Session, opening: WaitlistOpening) -> WaitlistEntry | None:
    """The earliest entry ``_waiting_for`` the opening whose patient holds no offer of this doctor
    (the doctor's lock is held). Per patient, not per entry: one who joined many overlapping
    ranges would otherwise hold a timeslot per entry, and get a timeslot back through another."""
    return session.scalars(
        select(WaitlistEntry)
        .where(*_waiting_for(opening), ~_holding_an_offer_of(opening))
        .order_by(WaitlistEntry.created_at, WaitlistEntry.id)
        .limit(1)
        .with_for_update(of=WaitlistEntry)
    ).first()


def _waits_behind_an_offer(session: Session, opening: WaitlistOpening) -> bool:
    """Whether a patient waits for the opening who holds an offer of its doctor now."""
    return bool(session.scalar(select(exists().where(*_waiting_for(opening), _holding_an_offer_of(opening)))))


def _settle_held(db: Database, scheduling: SchedulingClient, pending: _Pending) -> int:
    """The hold stands: the opening is done and the patient hears of the offer (once).

    The offer may have ended while it was being held: accepted (the patient saw it on their
    waitlist and booked it: their appointment holds the timeslot now), or withdrawn or expired
    (nobody uses the hold: it is released, and the opening stays for the next in line).
    """
    announced = False
    with db.transaction() as session:
        offer = session.get(WaitlistOffer, pending.offer_id, with_for_update=True)
        state = offer.state if offer is not None else None
        if state in HOLDING_OFFER_STATES:
            session.execute(delete(WaitlistOpening).where(WaitlistOpening.timeslot_id == pending.timeslot_id))
        if state == OfferState.OPEN and not offer.announced:
            entry = session.get(WaitlistEntry, offer.entry_id)
            events.publish_offered(session, view_of(entry, offer), patient_id=pending.patient_id)
            offer.announced = announced = True
    if state not in HOLDING_OFFER_STATES:
        scheduling.release(pending.timeslot_id, reservation_id=pending.reservation_id)
        return 0
    metrics.WAITLIST_OFFERS.labels("offered").inc(1 if announced else 0)
    return 1 if state == OfferState.OPEN else 0


def _settle_refused(db: Database, pending: _Pending, *, keep_opening: bool) -> None:
    """scheduling refused the hold (the timeslot is taken, gone or started): no offer."""
    with db.transaction() as session:
        session.execute(
            update(WaitlistOffer)
            .where(WaitlistOffer.id == pending.offer_id, WaitlistOffer.state == OfferState.OPEN)
            .values(state=OfferState.WITHDRAWN, closed_at=utcnow())
        )
        if not keep_opening:
            session.execute(delete(WaitlistOpening).where(WaitlistOpening.timeslot_id == pending.timeslot_id))
