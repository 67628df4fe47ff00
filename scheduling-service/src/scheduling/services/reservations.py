"""The scheduling side of the booking protocol (docs/booking-protocol.md).

Holds and releases for booking's internal calls, the effects of booking's ``booked``/``cancelled``
events (a ``rescheduled`` one is both: the new timeslot booked, the old one freed), and the sweeper
pass over expired holds. Every change is conditional on the reservation id, so stale or repeated
inputs change nothing.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, exists, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from chassis.db import Database
from chassis.reads import FastReads
from chassis.timezones import utcnow
from scheduling.adapters import metrics
from scheduling.domain import HoldOutcome, HoldTarget, TimeslotState, check_hold, decide_expired_hold
from scheduling.errors import TimeslotNotAvailable
from scheduling.models import CancelledReservation, Doctor, Timeslot
from scheduling.queries import DOCTOR_ALLOWS_BOOKING, POLICY_OF_DOCTOR
from scheduling.services.releases import ReleaseReason, free_timeslot

log = logging.getLogger("scheduling.reservations")
CANCELLED = ReleaseReason.APPOINTMENT_CANCELLED

_doctor_active = exists().where(Doctor.id == Timeslot.doctor_id, Doctor.is_doctor, Doctor.is_active)
# The statements every booking runs, built once (building and fingerprinting one per request
# cost more than running it). Parameter names differ from the columns they set, as Core requires.
_TIMESLOTS = Timeslot.__table__
_HOLD = (
    update(_TIMESLOTS)
    .where(
        _TIMESLOTS.c.id == bindparam("p_timeslot_id"),
        _TIMESLOTS.c.state == TimeslotState.AVAILABLE.value,
        _TIMESLOTS.c.start_time > bindparam("p_now"),
        _TIMESLOTS.c.doctor_id != bindparam("p_patient_id"),
        DOCTOR_ALLOWS_BOOKING,
    )
    .values(
        state=TimeslotState.HELD.value,
        reservation_id=bindparam("p_reservation_id"),
        held_until=bindparam("p_held_until"),
        updated_at=bindparam("p_now"),
    )
    .returning(
        _TIMESLOTS.c.id,
        _TIMESLOTS.c.doctor_id,
        _TIMESLOTS.c.start_time,
        _TIMESLOTS.c.end_time,
        _TIMESLOTS.c.held_until,
    )
)
# A reschedule holds only a timeslot of the appointment's doctor.
_HOLD_OF_DOCTOR = _HOLD.where(_TIMESLOTS.c.doctor_id == bindparam("p_doctor_id"))
_BOOK_HELD = (
    update(_TIMESLOTS)
    .where(
        _TIMESLOTS.c.id == bindparam("p_timeslot_id"),
        _TIMESLOTS.c.reservation_id == bindparam("p_reservation_id"),
        _TIMESLOTS.c.state == TimeslotState.HELD.value,
    )
    .values(state=TimeslotState.BOOKED.value, held_until=None)
    .returning(_TIMESLOTS.c.id)
)


@dataclass(frozen=True, slots=True)
class Hold:
    """The timeslot a hold took, as the hold's UPDATE returned it."""

    id: int
    doctor_id: int
    start_time: datetime
    end_time: datetime
    held_until: datetime | None


async def hold_timeslot(
    reads: FastReads,
    db: Database,
    timeslot_id: int,
    *,
    reservation_id: uuid.UUID,
    patient_id: int,
    hold_seconds: int,
    now: datetime | None = None,
    doctor_id: int | None = None,
) -> Hold | Timeslot:
    """Hold a timeslot for ``reservation_id`` until ``now + hold_seconds``; idempotent.

    One conditional UPDATE decides, so of many concurrent holds exactly one wins. It is
    whole in itself (it commits alone), so it runs in autocommit on the event loop: every
    booking comes through here. The one write outside ``db.transaction()``, fenced here and
    justified by ``make bench`` row 6 (``POST /api/appointments/``). When it changes nothing,
    the current row explains why (or shows that this reservation already holds it), read in a
    database thread; if nothing explains it (the timeslot was freed in between), it runs again.
    """
    now = now or utcnow()
    values = {
        "p_timeslot_id": timeslot_id,
        "p_now": now,
        "p_patient_id": patient_id,
        "p_reservation_id": reservation_id,
        "p_held_until": now + timedelta(seconds=hold_seconds),
    }
    if doctor_id is not None:
        values["p_doctor_id"] = doctor_id
    asked = {"reservation_id": reservation_id, "patient_id": patient_id, "now": now, "doctor_id": doctor_id}
    for _ in range(3):
        held = await reads.write(_HOLD if doctor_id is None else _HOLD_OF_DOCTOR, values)
        if held is not None:
            metrics.HOLDS_CREATED.inc()
            return Hold(**held)
        if (timeslot := await db.run(_refused_hold, db, timeslot_id, asked)) is not None:
            return timeslot
    raise TimeslotNotAvailable("This timeslot is not available any more.")


def _refused_hold(db: Database, timeslot_id: int, asked: dict[str, Any]) -> Timeslot | None:
    """Why a hold (``asked``: ``check_hold``'s arguments) changed nothing (raises the domain error),
    or the timeslot this reservation holds (None: nothing refuses it now)."""
    with db.transaction() as session:
        row = session.execute(
            select(Timeslot, _doctor_active.label("doctor_active"), *POLICY_OF_DOCTOR).where(
                Timeslot.id == timeslot_id
            )
        ).one_or_none()
        target = None
        if row is not None:
            timeslot = row.Timeslot
            target = HoldTarget(
                timeslot_id=timeslot.id,
                doctor_id=timeslot.doctor_id,
                start_time=timeslot.start_time,
                state=TimeslotState(timeslot.state),
                reservation_id=timeslot.reservation_id,
                doctor_active=row.doctor_active,
                min_notice_minutes=row.min_notice_minutes or 0,
                booking_horizon_days=row.booking_horizon_days,
            )
        return row.Timeslot if check_hold(target, **asked) else None


def release_hold(db: Database, timeslot_id: int, *, reservation_id: uuid.UUID) -> bool:
    """Free a timeslot held by ``reservation_id``; anything else is a no-op. True if freed."""
    with db.transaction() as session:
        freed = free_timeslot(
            session,
            timeslot_id,
            reservation_id=reservation_id,
            states=[TimeslotState.HELD],
            reason=ReleaseReason.HOLD_RELEASED,
        )
    metrics.HOLDS_FREED.inc(1 if freed else 0)
    return freed


def book_for_reservation(session: Session, timeslot_id: int, reservation_id: uuid.UUID) -> None:
    """Effect of ``booking.appointment.booked``: the timeslot is booked for the reservation.

    Held by it → booked; already booked by it → nothing; available → booked for
    it (booking holds the truth), unless that reservation was cancelled already
    (the events arrived out of order); taken by another reservation → logged, left.
    """
    # The usual case, in one statement: the hold of this reservation becomes the booking.
    if session.execute(
        _BOOK_HELD, {"p_timeslot_id": timeslot_id, "p_reservation_id": reservation_id}
    ).first():
        metrics.HOLDS_CONFIRMED.inc()
        return
    timeslot = session.get(Timeslot, timeslot_id, with_for_update=True)
    if timeslot is None:
        log.error("booked event for unknown timeslot %s (reservation %s)", timeslot_id, reservation_id)
        return
    if timeslot.reservation_id == reservation_id:
        if timeslot.state == TimeslotState.HELD:
            _set_booked(timeslot)
            metrics.HOLDS_CONFIRMED.inc()
        return
    if timeslot.state == TimeslotState.AVAILABLE:
        if session.get(CancelledReservation, reservation_id) is not None:
            log.info("ignoring booked event of cancelled reservation %s", reservation_id)
            return
        timeslot.reservation_id = reservation_id
        _set_booked(timeslot)
        return
    log.error(
        "timeslot %s is %s by reservation %s; not booking it for reservation %s",
        timeslot_id,
        timeslot.state,
        timeslot.reservation_id,
        reservation_id,
    )


def free_for_reservation(
    session: Session, timeslot_id: int, reservation_id: uuid.UUID, *, reason: ReleaseReason = CANCELLED
) -> None:
    """Effect of ``booking.appointment.cancelled`` (or a reschedule's old timeslot: ``reason``):
    free the timeslot if this reservation has it.

    A stale event (the timeslot was freed and taken again by another reservation)
    changes nothing. The reservation is remembered as cancelled so that a late
    ``booked`` event cannot revive it.

    The row is locked first, whatever its state (the ``UPDATE`` below leaves a free one unlocked): a
    ``booked`` event applied at once by another replica locks it too, so it waits and sees this.
    """
    session.execute(select(Timeslot.id).where(Timeslot.id == timeslot_id).with_for_update())
    session.execute(
        insert(CancelledReservation)
        .values(reservation_id=reservation_id, timeslot_id=timeslot_id)
        .on_conflict_do_nothing(index_elements=[CancelledReservation.reservation_id])
    )
    states = [TimeslotState.HELD, TimeslotState.BOOKED]
    freed = free_timeslot(session, timeslot_id, reservation_id=reservation_id, states=states, reason=reason)
    metrics.HOLDS_FREED.inc(1 if freed else 0)  # 0 when the event was stale


def _set_booked(timeslot: Timeslot) -> None:
    timeslot.state = TimeslotState.BOOKED
    timeslot.held_until = None


@dataclass(frozen=True, slots=True)
class ReservationAnswer:
    """booking's answer about a reservation: found (and whether it takes its timeslot), not found,
    or unknown (None)."""

    found: bool | None
    takes_timeslot: bool | None = None


ReservationLookup = Callable[[uuid.UUID], ReservationAnswer]


def sweep_expired_holds(
    db: Database, lookup: ReservationLookup, *, now: datetime | None = None, max_holds: int = 100
) -> dict[int, HoldOutcome]:
    """Settle holds past their expiry by asking booking about each; returns what was decided.

    Each hold is settled in its own transaction, locked with ``FOR UPDATE SKIP
    LOCKED`` so several replicas share the work without asking twice. When
    booking cannot be reached the pass stops: the holds wait for the next one.
    """
    now = now or utcnow()
    decided: dict[int, HoldOutcome] = {}
    for _ in range(max_holds):
        with db.transaction() as session:
            timeslot = session.scalars(
                select(Timeslot)
                .where(
                    Timeslot.state == TimeslotState.HELD,
                    Timeslot.held_until < now,
                    Timeslot.id.not_in(list(decided)),
                )
                .order_by(Timeslot.held_until)
                .limit(1)
                .with_for_update(skip_locked=True)
            ).first()
            if timeslot is None:
                break
            reservation_id = timeslot.reservation_id
            answer = lookup(reservation_id)
            outcome = decide_expired_hold(answer.found, answer.takes_timeslot)
            decided[timeslot.id] = outcome
            if outcome is HoldOutcome.BOOK:
                _set_booked(timeslot)
                metrics.HOLDS_CONFIRMED.inc()
            elif outcome is HoldOutcome.FREE:
                metrics.HOLDS_EXPIRED.inc()
                free_timeslot(
                    session,
                    timeslot.id,
                    reservation_id=reservation_id,
                    states=[TimeslotState.HELD],
                    reason=ReleaseReason.HOLD_EXPIRED,
                )
            log.info(
                "expired hold of timeslot %s (reservation %s): %s",
                timeslot.id,
                reservation_id,
                outcome,
            )
        if answer.found is None:
            break
    return decided
