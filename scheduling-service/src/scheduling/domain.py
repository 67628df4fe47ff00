"""The rules of a doctor's schedule, as pure functions over plain values.

No FastAPI, SQLAlchemy or pika here: these rules are tested without a database.
The database repeats the ones it can hold (no overlap, length bounds, state
consistency) so that concurrent requests cannot break them either.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from scheduling.errors import (
    CannotBookOwnTimeslot,
    InvalidTimeslot,
    OtherDoctor,
    PatternTooLarge,
    TimeslotInPast,
    TimeslotNotAvailable,
    TimeslotNotFound,
    TimeslotStarted,
    TooFarAhead,
    TooSoon,
)

MIN_LENGTH = timedelta(minutes=5)
MAX_LENGTH = timedelta(hours=12)
MAX_BULK_TIMESLOTS = 500
MAX_PATTERN_DAYS = 366


class TimeslotState(StrEnum):
    AVAILABLE = "available"  # free; bookable while it starts in the future
    HELD = "held"  # booking is storing an appointment for the reservation
    BOOKED = "booked"  # an appointment with the reservation exists


@dataclass(frozen=True, slots=True, order=True)
class Interval:
    """A half-open span of time ``[start, end)``, both ends aware."""

    start: datetime
    end: datetime

    def overlaps(self, other: Interval) -> bool:
        return self.start < other.end and other.start < self.end

    def as_json(self) -> dict[str, str]:
        return {"start_time": iso_utc(self.start), "end_time": iso_utc(self.end)}


def iso_utc(value: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``, as every response and problem detail gives times."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def timeslot_facts(timeslot: Any) -> dict[str, Any]:
    """The facts about a timeslot (a row or an object with its columns) that its events carry."""
    return {
        "timeslot_id": timeslot.id,
        "doctor_id": timeslot.doctor_id,
        "start_time": iso_utc(timeslot.start_time),
        "end_time": iso_utc(timeslot.end_time),
    }


def requested_interval(start_time: datetime, end_time: datetime, tz: ZoneInfo) -> Interval:
    """The instants a request's ``start_time`` and ``end_time`` name: a time without an offset is
    wall time in ``tz`` (the first of the two on the night the clocks go back), and one that does
    not exist there (inside the hour the clocks skip) is refused, not moved an hour on."""
    instants = []
    for field, value in (("start_time", start_time), ("end_time", end_time)):
        instant = value.astimezone(UTC) if value.utcoffset() is not None else _existing_instant(value, tz)
        if instant is None:
            raise InvalidTimeslot(
                f"{field} {value:%Y-%m-%d %H:%M} does not exist in {tz.key}: the clocks skip that hour.",
                errors=[{"field": field, "message": f"this local time does not exist in {tz.key}"}],
            )
        instants.append(instant)
    return Interval(*instants)


def check_new_timeslot(interval: Interval, now: datetime) -> None:
    """Raise unless ``interval`` may become a new timeslot at ``now``."""
    if interval.end <= interval.start:
        raise InvalidTimeslot(
            "end_time must be after start_time.",
            errors=[{"field": "end_time", "message": "must be after start_time"}],
        )
    length = interval.end - interval.start
    if not MIN_LENGTH <= length <= MAX_LENGTH:
        raise InvalidTimeslot(
            "A timeslot lasts from 5 minutes to 12 hours.",
            errors=[{"field": "end_time", "message": "the timeslot must last from 5 minutes to 12 hours"}],
        )
    if interval.start <= now:
        raise TimeslotInPast(
            "start_time must be in the future.",
            errors=[{"field": "start_time", "message": "must be in the future"}],
        )


@dataclass(frozen=True, slots=True)
class WorkingPattern:
    """A doctor's working pattern in the clinic's local (wall-clock) time."""

    date_from: date
    date_to: date
    weekdays: frozenset[int]  # Monday = 0
    day_start: time
    day_end: time
    slot_minutes: int
    break_minutes: int = 0


def expand_pattern(
    pattern: WorkingPattern, tz: ZoneInfo, *, limit: int = MAX_BULK_TIMESLOTS
) -> list[Interval]:
    """The timeslots of ``pattern`` in ``tz``, earliest first; more than ``limit`` raises.

    Slots are laid out on local wall-clock time, so 09:00 stays 09:00 across a
    daylight-saving change. Around a change a slot is **skipped** when its start
    or end wall time does not exist (the spring-forward gap) or when its real
    length differs from ``slot_minutes`` (it straddles the gap or the repeated
    fall-back hour, whose wall times are read at their first occurrence). What
    is kept maps monotonically to UTC, so kept slots never overlap.
    """
    slot = timedelta(minutes=pattern.slot_minutes)
    step = slot + timedelta(minutes=pattern.break_minutes)
    intervals: list[Interval] = []
    for day in _days(pattern):
        for start_wall, end_wall in _wall_slots(day, pattern.day_start, pattern.day_end, slot, step):
            interval = _real_interval(start_wall, end_wall, tz)
            if interval is None or interval.end - interval.start != slot:
                continue
            intervals.append(interval)
            if len(intervals) > limit:
                raise PatternTooLarge(
                    f"This pattern makes more than {limit} timeslots; split it into smaller ranges.",
                    errors=[
                        {"field": "date_to", "message": f"the pattern makes more than {limit} timeslots"}
                    ],
                )
    return intervals


def _days(pattern: WorkingPattern) -> Iterator[date]:
    day = pattern.date_from
    while day <= pattern.date_to:
        if day.weekday() in pattern.weekdays:
            yield day
        day += timedelta(days=1)


def _wall_slots(
    day: date, day_start: time, day_end: time, slot: timedelta, step: timedelta
) -> Iterator[tuple[datetime, datetime]]:
    start = datetime.combine(day, day_start)
    last_end = datetime.combine(day, day_end)
    while start + slot <= last_end:
        yield start, start + slot
        start += step


def _real_interval(start_wall: datetime, end_wall: datetime, tz: ZoneInfo) -> Interval | None:
    start = _existing_instant(start_wall, tz)
    end = _existing_instant(end_wall, tz)
    if start is None or end is None:
        return None
    return Interval(start, end)


def _existing_instant(wall: datetime, tz: ZoneInfo) -> datetime | None:
    """``wall`` in ``tz`` as UTC (first occurrence if repeated), or None inside a gap."""
    aware = wall.replace(tzinfo=tz, fold=0)
    instant = aware.astimezone(UTC)
    # A wall time inside a spring-forward gap does not survive the round trip.
    if instant.astimezone(tz).replace(tzinfo=None) != wall:
        return None
    return instant


def past_intervals(intervals: Iterable[Interval], now: datetime) -> list[Interval]:
    """The intervals that do not start in the future."""
    return [interval for interval in intervals if interval.start <= now]


def overlapping(new: Sequence[Interval], existing: Sequence[Interval]) -> list[Interval]:
    """The intervals of ``new`` that overlap one of ``existing`` (both sorted by start)."""
    conflicts: list[Interval] = []
    j = 0
    for interval in new:
        # Existing intervals ending before this one starts cannot overlap any later one.
        while j < len(existing) and existing[j].end <= interval.start:
            j += 1
        k = j
        while k < len(existing) and existing[k].start < interval.end:
            if existing[k].overlaps(interval):
                conflicts.append(interval)
                break
            k += 1
    return conflicts


class HoldOutcome(StrEnum):
    """What the hold sweeper does with a hold past its expiry."""

    BOOK = "book"  # booking stored an appointment for the reservation
    FREE = "free"  # booking has none, or it was cancelled
    WAIT = "wait"  # booking could not tell; ask again later, never free blindly


def decide_expired_hold(found: bool | None, takes_timeslot: bool | None = None) -> HoldOutcome:
    """The fate of an expired hold, from booking's answer about its reservation.

    ``found`` is True when booking stored an appointment for the reservation, False when it
    answered that none exists, None when it could not be asked; ``takes_timeslot`` is booking's
    own judgement of that appointment (its status machine is booking's, never repeated here).
    """
    if found is None:
        return HoldOutcome.WAIT
    if not found or takes_timeslot is False:
        return HoldOutcome.FREE
    if takes_timeslot:
        return HoldOutcome.BOOK
    return HoldOutcome.WAIT


@dataclass(frozen=True, slots=True)
class HoldTarget:
    """What decides a hold: the timeslot as it is now, and whether its doctor is active."""

    timeslot_id: int
    doctor_id: int
    start_time: datetime
    state: TimeslotState
    reservation_id: uuid.UUID | None
    doctor_active: bool
    min_notice_minutes: int = 0
    booking_horizon_days: int | None = None


def check_hold(
    target: HoldTarget | None,
    *,
    reservation_id: uuid.UUID,
    patient_id: int,
    now: datetime,
    doctor_id: int | None = None,
) -> bool:
    """True if ``reservation_id`` holds (or already held) the timeslot; else raise why not, or
    False if nothing refuses it: the timeslot was freed after the hold's UPDATE looked.

    Used to explain a conditional UPDATE that changed nothing: it repeats that
    UPDATE's conditions in the order a client should hear about them. A hold the reservation
    already has (a retry, or a waitlist offer's hold that its patient now books) answers to the
    same rules on the start time: the doctor's notice and horizon are those of now, not of when
    it was first held.
    """
    if target is None or not target.doctor_active:
        raise TimeslotNotFound("There is no such timeslot.")
    if doctor_id is not None and target.doctor_id != doctor_id:
        raise OtherDoctor("An appointment can only move to another timeslot of the same doctor.")
    if target.doctor_id == patient_id:
        raise CannotBookOwnTimeslot("A doctor cannot book an appointment with themselves.")
    if target.start_time <= now:
        raise TimeslotStarted("This timeslot has already started; only future timeslots can be held.")
    held_already = target.reservation_id == reservation_id and target.state is not TimeslotState.AVAILABLE
    if target.state is not TimeslotState.AVAILABLE and not held_already:
        raise TimeslotNotAvailable("This timeslot is not available any more.")
    check_booking_window(
        target.start_time,
        now=now,
        min_notice_minutes=target.min_notice_minutes,
        booking_horizon_days=target.booking_horizon_days,
    )
    return held_already


def check_booking_window(
    start_time: datetime, *, now: datetime, min_notice_minutes: int, booking_horizon_days: int | None
) -> None:
    """A doctor's booking policy on start times: not sooner than the notice, not beyond the horizon."""
    if start_time < now + timedelta(minutes=min_notice_minutes):
        raise TooSoon(
            f"This doctor takes bookings at least {min_notice_minutes} minutes ahead.",
            errors=[{"field": "timeslot_id", "message": "starts sooner than the doctor's minimum notice"}],
        )
    if booking_horizon_days is not None and start_time > now + timedelta(days=booking_horizon_days):
        raise TooFarAhead(
            f"This doctor takes bookings at most {booking_horizon_days} days ahead.",
            errors=[{"field": "timeslot_id", "message": "starts beyond the doctor's booking horizon"}],
        )
