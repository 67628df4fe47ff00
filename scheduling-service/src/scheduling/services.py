"""Use cases of doctors' schedules and patients' free-timeslot listing; one transaction each."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, DateTime, Select, bindparam, cast, exists, func, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from chassis.db import Database
from chassis.idempotency import NO_KEY, Recorder
from chassis.pagination import PageParams, known_total
from chassis.reads import FastReads
from chassis.timezones import as_aware, day_bounds, utcnow
from scheduling import events
from scheduling.domain import (
    Interval,
    TimeslotState,
    WorkingPattern,
    check_new_timeslot,
    expand_pattern,
    overlapping,
    past_intervals,
)
from scheduling.errors import (
    DoctorInactive,
    DoctorNotFound,
    EmptyPattern,
    InvalidFilter,
    TimeslotInPast,
    TimeslotNotFound,
    TimeslotOverlap,
    TimeslotReserved,
)
from scheduling.models import NO_OVERLAP_CONSTRAINT, Doctor, Timeslot

OVERLAP = "This overlaps another of your timeslots."


def _is_overlap(exc: IntegrityError) -> bool:
    orig = exc.orig
    return getattr(orig, "sqlstate", None) == "23P01" or (
        getattr(getattr(orig, "diag", None), "constraint_name", None) == NO_OVERLAP_CONSTRAINT
    )


def _check_doctor_may_schedule(session: Session, doctor_id: int, *, register: bool) -> None:
    """Raise ``DoctorInactive`` unless the caller (a verified doctor token) may manage timeslots.

    A doctor identity has not told us about yet is trusted from the token and,
    with ``register``, recorded as an active doctor at revision 0 (any identity
    event supersedes it). The row is share-locked so that a concurrent
    deactivation waits for this transaction and then sees its new timeslots.
    """
    if register:
        session.execute(
            insert(Doctor)
            .values(id=doctor_id, is_doctor=True, is_active=True, revision=0)
            .on_conflict_do_nothing(index_elements=[Doctor.id])
        )
    doctor = session.scalars(select(Doctor).where(Doctor.id == doctor_id).with_for_update(read=True)).first()
    if doctor is not None and not (doctor.is_doctor and doctor.is_active):
        raise DoctorInactive("Your doctor account is not active; you cannot manage timeslots.")


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
    interval = Interval(as_aware(start_time, tz), as_aware(end_time, tz))
    check_new_timeslot(interval, utcnow())
    try:
        with db.transaction() as session:
            _check_doctor_may_schedule(session, doctor_id, register=True)
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
            _check_doctor_may_schedule(session, doctor_id, register=True)
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


def own_timeslots_query(
    doctor_id: int, *, tz: ZoneInfo, day: date | None = None, is_available: bool | None = None
) -> Select[tuple[Timeslot]]:
    """A doctor's own timeslots, earliest first; optionally one clinic-time-zone day and availability."""
    query = select(Timeslot).where(Timeslot.doctor_id == doctor_id)
    if day is not None:
        start, end = day_bounds(day, tz)
        query = query.where(Timeslot.start_time >= start, Timeslot.start_time < end)
    if is_available is True:
        query = query.where(Timeslot.state == TimeslotState.AVAILABLE)
    elif is_available is False:
        query = query.where(Timeslot.state != TimeslotState.AVAILABLE)
    return query.order_by(Timeslot.start_time, Timeslot.id)


def free_timeslots_query(
    doctor_id: int,
    *,
    tz: ZoneInfo,
    now: datetime,
    day: date | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
    columns: Sequence[ColumnElement[Any]] | None = None,
) -> Select[Any]:
    """A doctor's free timeslots (available, starting after ``now``), earliest first.

    The rows are ``Timeslot`` objects, or ``columns`` of the table (a plain Core statement)."""
    c = TIMESLOTS.c
    query = select(*(columns or (Timeslot,))).where(
        c.doctor_id == doctor_id,
        c.state == TimeslotState.AVAILABLE,
        c.start_time > now,
    )
    if day is not None:
        start, end = day_bounds(day, tz)
        query = query.where(c.start_time >= start, c.start_time < end)
    if date_from is not None:
        query = query.where(c.start_time >= day_bounds(date_from, tz)[0])
    if date_to is not None:
        query = query.where(c.start_time < day_bounds(date_to, tz)[1])
    return query.order_by(c.start_time, c.id)


TIMESLOTS = Timeslot.__table__
DOCTORS = Doctor.__table__
# What a listing shows of a timeslot (``TimeslotRead.of`` reads these attributes of a row too).
TIMESLOT_COLUMNS = tuple(TIMESLOTS.c[name] for name in ("id", "doctor_id", "start_time", "end_time", "state"))
# The free listing's rows are ``TimeslotRead``'s fields as they are: no object per row in between.
FREE_LISTING_COLUMNS = (
    *TIMESLOT_COLUMNS[:4],
    (TIMESLOTS.c.state == TimeslotState.AVAILABLE).label("is_available"),
)

# The free listing's statements, built once per shape of filters with every value a bound
# parameter: building and fingerprinting a statement on each request cost more than running it.
_LISTED = exists().where(DOCTORS.c.id == bindparam("doctor_id"), DOCTORS.c.is_doctor, DOCTORS.c.is_active)
_DOCTOR_LISTED = select(_LISTED)
# The doctor's booking policy bounds the listing: from now + notice to now + horizon (if any).
# Uncorrelated scalar subqueries, so PostgreSQL reads the doctor's row once per statement.
_now = cast(bindparam("now"), DateTime(timezone=True))
_EARLIEST = (
    select(_now + func.make_interval(0, 0, 0, 0, 0, DOCTORS.c.min_notice_minutes))
    .where(DOCTORS.c.id == bindparam("doctor_id"))
    .scalar_subquery()
)
_LATEST = (
    select(_now + func.make_interval(0, 0, 0, DOCTORS.c.booking_horizon_days))
    .where(DOCTORS.c.id == bindparam("doctor_id"))
    .scalar_subquery()
)


def _free_conditions(*, day: bool, since: bool, until: bool) -> list[ColumnElement[bool]]:
    c = TIMESLOTS.c
    conditions = [
        c.doctor_id == bindparam("doctor_id"),
        c.state == TimeslotState.AVAILABLE,
        c.start_time > bindparam("now"),
        _LISTED,
        c.start_time >= _EARLIEST,
        or_(_LATEST.is_(None), c.start_time <= _LATEST),
    ]
    if day:
        conditions += [c.start_time >= bindparam("day_start"), c.start_time < bindparam("day_end")]
    if since:
        conditions.append(c.start_time >= bindparam("since"))
    if until:
        conditions.append(c.start_time < bindparam("until"))
    return conditions


@functools.cache
def _free_page(*, day: bool, since: bool, until: bool) -> Select[Any]:
    return (
        select(*FREE_LISTING_COLUMNS)
        .where(*_free_conditions(day=day, since=since, until=until))
        .order_by(TIMESLOTS.c.start_time, TIMESLOTS.c.id)
        .offset(bindparam("offset"))
        .limit(bindparam("limit"))
    )


@functools.cache
def _free_count(*, day: bool, since: bool, until: bool) -> Select[tuple[int]]:
    return (
        select(func.count())
        .select_from(TIMESLOTS)
        .where(*_free_conditions(day=day, since=since, until=until))
    )


def _page(session: Session, query: Select[tuple[Timeslot]], page: PageParams) -> tuple[int, list[Timeslot]]:
    count = session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    rows = session.scalars(query.offset(page.offset).limit(page.limit)).all()
    return count or 0, list(rows)


def list_own_timeslots(
    db: Database,
    doctor_id: int,
    page: PageParams,
    *,
    tz: ZoneInfo,
    day: date | None = None,
    is_available: bool | None = None,
) -> tuple[int, list[Timeslot]]:
    """One page of a doctor's own timeslots and how many there are in all."""
    with db.transaction() as session:
        _check_doctor_may_schedule(session, doctor_id, register=False)
        return _page(session, own_timeslots_query(doctor_id, tz=tz, day=day, is_available=is_available), page)


def get_own_timeslot(db: Database, doctor_id: int, timeslot_id: int) -> Timeslot:
    """One of the doctor's own timeslots; another doctor's is reported as missing."""
    with db.transaction() as session:
        _check_doctor_may_schedule(session, doctor_id, register=False)
        timeslot = session.get(Timeslot, timeslot_id)
        if timeslot is None or timeslot.doctor_id != doctor_id:
            raise TimeslotNotFound("You have no such timeslot.")
        return timeslot


def delete_own_timeslot(db: Database, doctor_id: int, timeslot_id: int) -> None:
    """Delete one of the doctor's own timeslots while it is available (row-locked, so no hold slips in)."""
    with db.transaction() as session:
        _check_doctor_may_schedule(session, doctor_id, register=False)
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


async def list_free_timeslots(
    reads: FastReads,
    doctor_id: int,
    page: PageParams,
    *,
    tz: ZoneInfo,
    day: date | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
) -> tuple[int, list[dict[str, Any]]]:
    """One page of an active doctor's free future timeslots (``TimeslotRead`` fields); an unknown or
    inactive doctor is 404."""
    if date_from is not None and date_to is not None and date_to < date_from:
        raise InvalidFilter(
            "date_to must not be before date_from.",
            errors=[{"field": "date_to", "message": "must not be before date_from"}],
        )
    # One autocommit statement per read, on the event loop. The page itself is conditional on the doctor being
    # listed, so a non-empty page needs no separate doctor check and a short page no count.
    shape = {"day": day is not None, "since": date_from is not None, "until": date_to is not None}
    values: dict[str, Any] = {"doctor_id": doctor_id, "now": utcnow()}
    if day is not None:
        values["day_start"], values["day_end"] = day_bounds(day, tz)
    if date_from is not None:
        values["since"] = day_bounds(date_from, tz)[0]
    if date_to is not None:
        values["until"] = day_bounds(date_to, tz)[1]
    page_values = {**values, "offset": page.offset, "limit": page.limit}
    async with reads.connection() as reader:
        rows = await reader.all(_free_page(**shape), page_values)
        if not rows and not await reader.scalar(_DOCTOR_LISTED, {"doctor_id": doctor_id}):
            raise DoctorNotFound("There is no such doctor.")
        count = known_total(page, len(rows))
        if count is None:
            count = await reader.scalar(_free_count(**shape), values) or 0
    return count, rows
