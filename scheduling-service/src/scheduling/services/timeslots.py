"""Use cases of doctors' schedules: create (one, or a working pattern's), delete; one transaction each.

Reads (the doctor's own list, the patients' free listing) are in ``queries``."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from chassis.db import Database
from chassis.idempotency import NO_KEY, Recorder
from chassis.timezones import utcnow
from scheduling import events
from scheduling.domain import (
    Interval,
    TimeslotState,
    WorkingPattern,
    check_new_timeslot,
    expand_pattern,
    overlapping,
    past_intervals,
    requested_interval,
)
from scheduling.errors import (
    EmptyPattern,
    TimeslotInPast,
    TimeslotNotFound,
    TimeslotOverlap,
    TimeslotReserved,
)
from scheduling.models import NO_OVERLAP_CONSTRAINT, Timeslot
from scheduling.queries import check_doctor_may_schedule
from scheduling.services import doctors

OVERLAP = "This overlaps another of your timeslots."


def _is_overlap(exc: IntegrityError) -> bool:
    orig = exc.orig
    return getattr(orig, "sqlstate", None) == "23P01" or (
        getattr(getattr(orig, "diag", None), "constraint_name", None) == NO_OVERLAP_CONSTRAINT
    )


def create_timeslot(
    db: Database,
    doctor_id: int,
    start_time: datetime,
    end_time: datetime,
    *,
    tz: ZoneInfo,
    record: Recorder = NO_KEY,
) -> Timeslot:
    """A new available timeslot; naive datetimes are read in the clinic time zone ``tz``.

    ``record`` stores an Idempotency-Key's answer in the same transaction."""
    interval = requested_interval(start_time, end_time, tz)
    check_new_timeslot(interval, utcnow())
    try:
        with db.transaction() as session:
            doctors.record_doctor_from_token(session, doctor_id)
            check_doctor_may_schedule(session, doctor_id)
            timeslot = Timeslot(doctor_id=doctor_id, start_time=interval.start, end_time=interval.end)
            session.add(timeslot)
            session.flush()
            events.publish_timeslot_created(session, timeslot)
            record.record(session, timeslot)
    except IntegrityError as exc:
        if _is_overlap(exc):
            raise TimeslotOverlap(OVERLAP) from exc
        raise
    return timeslot


def create_timeslots_bulk(
    db: Database, doctor_id: int, pattern: WorkingPattern, *, tz: ZoneInfo, record: Recorder = NO_KEY
) -> list[Timeslot]:
    """All the timeslots of a working pattern, or none (422/409 listing the offending times)."""
    intervals = expand_pattern(pattern, tz)
    if not intervals:
        raise EmptyPattern(
            "This pattern makes no timeslot: check the dates, weekdays and working hours.",
            errors=[{"field": "weekdays", "message": "no day of the range matches"}],
        )
    past = past_intervals(intervals, utcnow())
    if past:
        raise TimeslotInPast(
            f"{len(past)} timeslots of this pattern do not start in the future; nothing was created.",
            errors=[{"field": "date_from", "message": "timeslots must start in the future"}],
            past=[interval.as_json() for interval in past],
        )
    try:
        with db.transaction() as session:
            doctors.record_doctor_from_token(session, doctor_id)
            check_doctor_may_schedule(session, doctor_id)
            conflicts = overlapping(intervals, _existing_intervals(session, doctor_id, intervals))
            if conflicts:
                raise _overlaps(conflicts)
            created = session.scalars(
                insert(Timeslot).returning(Timeslot, sort_by_parameter_order=True),
                [{"doctor_id": doctor_id, "start_time": i.start, "end_time": i.end} for i in intervals],
            ).all()
            for timeslot in created:
                events.publish_timeslot_created(session, timeslot)
            record.record(session, created)
    except IntegrityError as exc:
        if not _is_overlap(exc):
            raise
        # A concurrent request took some of these times after our check: report them now.
        with db.transaction() as session:
            conflicts = overlapping(intervals, _existing_intervals(session, doctor_id, intervals))
        raise _overlaps(conflicts) from exc
    return list(created)


def _overlaps(conflicts: list[Interval]) -> TimeslotOverlap:
    return TimeslotOverlap(
        f"{len(conflicts)} timeslots of this pattern overlap your existing timeslots; nothing was created.",
        conflicts=[interval.as_json() for interval in conflicts],
    )


def _existing_intervals(session: Session, doctor_id: int, intervals: list[Interval]) -> list[Interval]:
    rows = session.execute(
        select(Timeslot.start_time, Timeslot.end_time)
        .where(
            Timeslot.doctor_id == doctor_id,
            Timeslot.start_time < intervals[-1].end,
            Timeslot.end_time > intervals[0].start,
        )
        .order_by(Timeslot.start_time)
    ).all()
    return [Interval(start, end) for start, end in rows]


def delete_own_timeslot(db: Database, doctor_id: int, timeslot_id: int) -> None:
    """Delete one of the doctor's own timeslots while it is available (row-locked, so no hold slips in)."""
    with db.transaction() as session:
        check_doctor_may_schedule(session, doctor_id)
        timeslot = session.scalars(
            select(Timeslot)
            .where(Timeslot.id == timeslot_id, Timeslot.doctor_id == doctor_id)
            .with_for_update()
        ).first()
        if timeslot is None:
            raise TimeslotNotFound("You have no such timeslot.")
        if timeslot.state != TimeslotState.AVAILABLE:
            raise TimeslotReserved(f"This timeslot is {timeslot.state} by a patient; it cannot be deleted.")
        session.delete(timeslot)
        events.publish_timeslot_deleted(session, timeslot, reason=events.DELETED_BY_DOCTOR)
