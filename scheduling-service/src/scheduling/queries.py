"""scheduling-service reads: a doctor's own timeslots, the patients' free listing (a hot read, on
``FastReads``: ``make bench`` row 4) and whether a doctor may manage timeslots."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    DateTime,
    Row,
    Select,
    and_,
    bindparam,
    cast,
    exists,
    func,
    not_,
    or_,
    select,
)
from sqlalchemy.orm import Session

from chassis.db import Database
from chassis.fhir import DateBound
from chassis.pagination import PageParams, known_total
from chassis.reads import FastReads
from chassis.timezones import day_bounds, utcnow
from scheduling.domain import TimeslotState
from scheduling.errors import DoctorInactive, DoctorNotFound, InvalidFilter, TimeslotNotFound
from scheduling.models import Doctor, Timeslot


def check_doctor_may_schedule(session: Session, doctor_id: int) -> None:
    """Raise ``DoctorInactive`` unless the caller (a verified doctor token) may manage timeslots.

    The row is share-locked so that a concurrent deactivation waits for this transaction and
    then sees its new timeslots. A doctor identity has not told us about yet is trusted from
    the token (``services.doctors.record_doctor_from_token`` records one that creates timeslots).
    """
    doctor = session.scalars(select(Doctor).where(Doctor.id == doctor_id).with_for_update(read=True)).first()
    if doctor is not None and not (doctor.is_doctor and doctor.is_active):
        raise DoctorInactive("Your doctor account is not active; you cannot manage timeslots.")


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
# Uncorrelated scalar subqueries, so PostgreSQL reads the doctor's row once per statement. The
# horizon's days are 24 hours each, as in ``domain.check_booking_window`` (days added to a
# timestamptz follow the session's time zone: 23 or 25 hours across a DST change).
_now = cast(bindparam("now"), DateTime(timezone=True))
_EARLIEST = (
    select(_now + func.make_interval(0, 0, 0, 0, 0, DOCTORS.c.min_notice_minutes))
    .where(DOCTORS.c.id == bindparam("doctor_id"))
    .scalar_subquery()
)
_LATEST = (
    select(_now + func.make_interval(0, 0, 0, 0, DOCTORS.c.booking_horizon_days * 24))
    .where(DOCTORS.c.id == bindparam("doctor_id"))
    .scalar_subquery()
)


_P_NOW = cast(bindparam("p_now"), DateTime(timezone=True))
# A timeslot's doctor is active and their booking policy lets it be booked now (outside the
# notice, inside the horizon): a condition of the hold's UPDATE (``services.reservations``).
DOCTOR_ALLOWS_BOOKING = exists().where(
    Doctor.id == Timeslot.doctor_id,
    Doctor.is_doctor,
    Doctor.is_active,
    Timeslot.start_time >= _P_NOW + func.make_interval(0, 0, 0, 0, 0, Doctor.min_notice_minutes),
    or_(
        Doctor.booking_horizon_days.is_(None),
        Timeslot.start_time <= _P_NOW + func.make_interval(0, 0, 0, 0, Doctor.booking_horizon_days * 24),
    ),
)
# The doctor's policy next to a timeslot (for explaining a refused hold).
POLICY_OF_DOCTOR = tuple(
    select(column).where(Doctor.id == Timeslot.doctor_id).scalar_subquery().label(column.key)
    for column in (Doctor.min_notice_minutes, Doctor.booking_horizon_days)
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
def free_page(*, day: bool, since: bool, until: bool) -> Select[Any]:
    """The free listing's page statement for one shape of filters (the only statement of it)."""
    return (
        select(*FREE_LISTING_COLUMNS)
        .where(*_free_conditions(day=day, since=since, until=until))
        .order_by(TIMESLOTS.c.start_time, TIMESLOTS.c.id)
        .offset(bindparam("offset"))
        .limit(bindparam("limit"))
    )


@functools.cache
def free_count(*, day: bool, since: bool, until: bool) -> Select[tuple[int]]:
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
        check_doctor_may_schedule(session, doctor_id)
        return _page(session, own_timeslots_query(doctor_id, tz=tz, day=day, is_available=is_available), page)


def get_own_timeslot(db: Database, doctor_id: int, timeslot_id: int) -> Timeslot:
    """One of the doctor's own timeslots; another doctor's is reported as missing."""
    with db.transaction() as session:
        check_doctor_may_schedule(session, doctor_id)
        timeslot = session.get(Timeslot, timeslot_id)
        if timeslot is None or timeslot.doctor_id != doctor_id:
            raise TimeslotNotFound("You have no such timeslot.")
        return timeslot


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
        rows = await reader.all(free_page(**shape), page_values)
        if not rows and not await reader.scalar(_DOCTOR_LISTED, {"doctor_id": doctor_id}):
            raise DoctorNotFound("There is no such doctor.")
        count = known_total(page, len(rows))
        if count is None:
            count = await reader.scalar(free_count(**shape), values) or 0
    return count, rows


# -- a doctor's whole schedule, each timeslot free or busy (the FHIR Slot search, scheduling.fhir) --


def is_free(now: datetime) -> ColumnElement[bool]:
    """Whether a timeslot is free as the free listing means it: available, starting after ``now``,
    bookable now under its doctor's policy (``DOCTOR_ALLOWS_BOOKING``: run with ``{"p_now": now}``)."""
    return and_(
        TIMESLOTS.c.state == TimeslotState.AVAILABLE, TIMESLOTS.c.start_time > now, DOCTOR_ALLOWS_BOOKING
    )


# A schedule's rows: ``SLOT_COLUMNS`` and ``is_free``.
SLOT_COLUMNS = (TIMESLOTS.c.id, TIMESLOTS.c.doctor_id, TIMESLOTS.c.start_time, TIMESLOTS.c.end_time)


def doctor_is_listed(session: Session, doctor_id: int) -> bool:
    """Whether ``doctor_id`` is an active doctor (whose schedule patients and admins may see)."""
    return session.scalar(_DOCTOR_LISTED, {"doctor_id": doctor_id}) or False


def get_listed_timeslot(session: Session, timeslot_id: int, now: datetime) -> Row[Any] | None:
    """One timeslot of an active doctor, free or not; None when there is none."""
    return session.execute(
        select(*SLOT_COLUMNS, is_free(now).label("is_free")).where(
            TIMESLOTS.c.id == timeslot_id,
            exists().where(DOCTORS.c.id == TIMESLOTS.c.doctor_id, DOCTORS.c.is_doctor, DOCTORS.c.is_active),
        ),
        {"p_now": now},
    ).first()


def search_schedule(
    session: Session,
    doctor_id: int,
    page: PageParams,
    *,
    now: datetime,
    free: bool | None = None,
    starts: Sequence[DateBound] = (),
) -> tuple[int, list[Row[Any]]]:
    """A page of a doctor's timeslots (earliest first), only free or only busy ones when ``free``
    says, starting within ``starts``; and how many match in all."""
    conditions: list[ColumnElement[bool]] = [TIMESLOTS.c.doctor_id == doctor_id]
    if free is not None:
        conditions.append(is_free(now) if free else not_(is_free(now)))
    conditions += [bound.condition(TIMESLOTS.c.start_time) for bound in starts]
    values = {"p_now": now}
    total = session.scalar(select(func.count()).select_from(TIMESLOTS).where(*conditions), values) or 0
    rows = session.execute(
        select(*SLOT_COLUMNS, is_free(now).label("is_free"))
        .where(*conditions)
        .order_by(TIMESLOTS.c.start_time, TIMESLOTS.c.id)
        .offset(page.offset)
        .limit(page.limit),
        values,
    ).all()
    return total, list(rows)
