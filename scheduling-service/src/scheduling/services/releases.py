"""Freeing a timeslot: the one way a held or booked timeslot becomes available again.

Every path that frees one comes through ``free_timeslot`` (a released hold, an expired
hold, a cancelled appointment, a reschedule away from it), so every one of them publishes
``scheduling.timeslot.released`` in the transaction that frees it; booking offers the
timeslot to its waitlist from that event. A future timeslot of a doctor who is no longer an
active doctor is deleted instead (``scheduling.timeslot.deleted``, ``doctor_unavailable``), as
the deactivation deleted their timeslots that were free then: it does not come back free.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from enum import StrEnum

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from chassis.messaging import add_event
from chassis.timezones import utcnow
from scheduling.domain import TimeslotState, timeslot_facts
from scheduling.models import Doctor, Timeslot

PRODUCER = "scheduling"
TIMESLOT_RELEASED = "scheduling.timeslot.released"


class ReleaseReason(StrEnum):
    """Why a timeslot was freed (``reason`` of ``scheduling.timeslot.released``)."""

    HOLD_RELEASED = "hold_released"
    HOLD_EXPIRED = "hold_expired"
    APPOINTMENT_CANCELLED = "appointment_cancelled"
    APPOINTMENT_RESCHEDULED = "appointment_rescheduled"


def free_timeslot(
    session: Session,
    timeslot_id: int,
    *,
    reservation_id: uuid.UUID,
    states: Iterable[TimeslotState],
    reason: ReleaseReason,
) -> bool:
    """Make the timeslot available if ``reservation_id`` has it in one of ``states``; True if freed.

    Conditional on the reservation, so a stale or repeated request frees nothing; the
    released event is written with the change (the outbox), so it is never lost.
    """
    freed = session.execute(
        update(Timeslot)
        .where(
            Timeslot.id == timeslot_id,
            Timeslot.reservation_id == reservation_id,
            Timeslot.state.in_(list(states)),
        )
        .values(state=TimeslotState.AVAILABLE, reservation_id=None, held_until=None, updated_at=utcnow())
        .returning(Timeslot.id, Timeslot.doctor_id, Timeslot.start_time, Timeslot.end_time),
        execution_options={"synchronize_session": False},
    ).first()
    if freed is None:
        return False
    if freed.start_time > utcnow() and not _schedules(session, freed.doctor_id):
        from scheduling import events  # it imports this module

        session.execute(delete(Timeslot).where(Timeslot.id == timeslot_id))
        events.publish_timeslot_deleted(session, freed, reason=events.DOCTOR_UNAVAILABLE)
        return True
    data = {**timeslot_facts(freed), "reservation_id": str(reservation_id), "reason": reason.value}
    add_event(session, TIMESLOT_RELEASED, data, producer=PRODUCER)
    return True


def _schedules(session: Session, doctor_id: int) -> bool:
    """Whether the user is an active doctor; their row locked (shared) until the commit, so a
    deactivation being applied now is waited for, not missed (its DELETE passed this timeslot
    while it was still taken)."""
    active = select(Doctor.is_doctor & Doctor.is_active).where(Doctor.id == doctor_id)
    return bool(session.scalar(active.with_for_update(read=True)))
