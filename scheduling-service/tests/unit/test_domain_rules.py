import uuid
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from scheduling.domain import (
    HoldOutcome,
    HoldTarget,
    Interval,
    TimeslotState,
    WorkingPattern,
    check_hold,
    check_new_timeslot,
    decide_expired_hold,
    expand_pattern,
    overlapping,
    past_intervals,
)
from scheduling.errors import (
    CannotBookOwnTimeslot,
    InvalidTimeslot,
    PatternTooLarge,
    TimeslotInPast,
    TimeslotNotAvailable,
    TimeslotNotFound,
    TimeslotStarted,
    TooFarAhead,
    TooSoon,
)

NEW_YORK = ZoneInfo("America/New_York")
NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
# 2030 in New York: clocks spring forward on Sunday 10 March (02:00 -> 03:00)
# and fall back on Sunday 3 November (02:00 EDT -> 01:00 EST).
SPRING_FORWARD = date(2030, 3, 10)
FALL_BACK = date(2030, 11, 3)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def pattern(day: date, start: str, end: str, slot: int, pause: int = 0, weekdays=None) -> WorkingPattern:
    return WorkingPattern(
        date_from=day,
        date_to=day,
        weekdays=frozenset(weekdays if weekdays is not None else [day.weekday()]),
        day_start=time.fromisoformat(start),
        day_end=time.fromisoformat(end),
        slot_minutes=slot,
        break_minutes=pause,
    )


def assert_no_overlaps(intervals: list[Interval]) -> None:
    for earlier, later in zip(intervals, intervals[1:], strict=False):
        assert earlier.end <= later.start


class TestNewTimeslot:
    def test_a_future_half_hour_is_a_valid_timeslot(self):
        check_new_timeslot(Interval(utc(2030, 2, 1, 9), utc(2030, 2, 1, 9, 30)), NOW)

    def test_the_end_must_come_after_the_start(self):
        with pytest.raises(InvalidTimeslot) as error:
            check_new_timeslot(Interval(utc(2030, 2, 1, 9), utc(2030, 2, 1, 9)), NOW)
        assert error.value.extra["errors"][0]["field"] == "end_time"

    @pytest.mark.parametrize("length", [timedelta(minutes=4, seconds=59), timedelta(hours=12, seconds=1)])
    def test_a_timeslot_lasts_from_five_minutes_to_twelve_hours(self, length):
        start = utc(2030, 2, 1, 9)
        with pytest.raises(InvalidTimeslot):
            check_new_timeslot(Interval(start, start + length), NOW)

    @pytest.mark.parametrize("length", [timedelta(minutes=5), timedelta(hours=12)])
    def test_the_length_bounds_are_inclusive(self, length):
        start = utc(2030, 2, 1, 9)
        check_new_timeslot(Interval(start, start + length), NOW)

    def test_a_timeslot_starting_now_is_in_the_past(self):
        with pytest.raises(TimeslotInPast):
            check_new_timeslot(Interval(NOW, NOW + timedelta(minutes=30)), NOW)


class TestWorkingPattern:
    def test_a_day_is_cut_into_slots_separated_by_breaks(self):
        slots = expand_pattern(pattern(date(2030, 2, 4), "09:00", "11:00", 30, pause=10), ZoneInfo("UTC"))
        assert [(s.start.time(), s.end.time()) for s in slots] == [
            (time(9, 0), time(9, 30)),
            (time(9, 40), time(10, 10)),
            (time(10, 20), time(10, 50)),
        ]

    def test_only_the_chosen_weekdays_of_the_range_get_slots(self):
        monday = date(2030, 2, 4)
        week = WorkingPattern(monday, monday + timedelta(days=13), frozenset({0, 2}), time(9), time(10), 60)
        assert [s.start.date() for s in expand_pattern(week, ZoneInfo("UTC"))] == [
            date(2030, 2, 4),
            date(2030, 2, 6),
            date(2030, 2, 11),
            date(2030, 2, 13),
        ]

    def test_wall_times_are_read_in_the_clinic_time_zone(self):
        [slot] = expand_pattern(pattern(date(2030, 2, 4), "09:00", "09:30", 30), NEW_YORK)
        assert slot == Interval(utc(2030, 2, 4, 14), utc(2030, 2, 4, 14, 30))

    def test_working_hours_keep_their_wall_time_across_a_daylight_saving_change(self):
        week = WorkingPattern(
            SPRING_FORWARD - timedelta(days=1), SPRING_FORWARD + timedelta(days=1), frozenset(range(7)),
            time(9), time(9, 30), 30,
        )  # fmt: skip
        starts = [s.start.astimezone(NEW_YORK).time() for s in expand_pattern(week, NEW_YORK)]
        assert starts == [time(9), time(9), time(9)]

    def test_slots_in_the_spring_forward_gap_are_skipped(self):
        slots = expand_pattern(pattern(SPRING_FORWARD, "01:00", "04:00", 30), NEW_YORK)
        local = [(s.start.astimezone(NEW_YORK).time(), s.end.astimezone(NEW_YORK).time()) for s in slots]
        # 01:30-02:00 ends at a wall time that does not exist; 02:00-03:00 do not exist at all.
        assert local == [(time(1, 0), time(1, 30)), (time(3, 0), time(3, 30)), (time(3, 30), time(4, 0))]
        assert all(s.end - s.start == timedelta(minutes=30) for s in slots)

    def test_a_slot_straddling_the_spring_forward_gap_is_skipped(self):
        slots = expand_pattern(pattern(SPRING_FORWARD, "01:30", "03:30", 120), NEW_YORK)
        assert slots == []

    def test_a_fall_back_day_never_creates_overlapping_slots(self):
        slots = expand_pattern(pattern(FALL_BACK, "00:00", "04:00", 30), NEW_YORK)
        assert_no_overlaps(slots)
        assert all(s.end - s.start == timedelta(minutes=30) for s in slots)
        # The repeated hour is used once (its first occurrence); 01:30-02:00 would last 90 minutes.
        assert Interval(utc(2030, 11, 3, 5, 0), utc(2030, 11, 3, 5, 30)) in slots
        assert Interval(utc(2030, 11, 3, 5, 30), utc(2030, 11, 3, 7, 0)) not in slots
        assert len(slots) == 7

    def test_odd_slot_lengths_around_daylight_saving_changes_never_overlap(self):
        for day in (SPRING_FORWARD, FALL_BACK):
            for slot, pause in [(60, 15), (45, 0), (25, 5), (90, 30)]:
                assert_no_overlaps(expand_pattern(pattern(day, "00:00", "06:00", slot, pause), NEW_YORK))

    def test_a_pattern_making_more_than_the_limit_is_refused(self):
        year = WorkingPattern(date(2030, 1, 1), date(2030, 12, 31), frozenset(range(7)), time(8), time(18), 5)
        with pytest.raises(PatternTooLarge):
            expand_pattern(year, ZoneInfo("UTC"))

    def test_exactly_the_limit_is_allowed(self):
        days = WorkingPattern(date(2030, 1, 1), date(2030, 1, 5), frozenset(range(7)), time(0), time(10), 6)
        assert len(expand_pattern(days, ZoneInfo("UTC"))) == 500


class TestIntervals:
    def test_back_to_back_intervals_do_not_overlap(self):
        assert not Interval(utc(2030, 1, 2, 9), utc(2030, 1, 2, 10)).overlaps(
            Interval(utc(2030, 1, 2, 10), utc(2030, 1, 2, 11))
        )

    def test_overlapping_lists_the_new_intervals_that_hit_existing_ones(self):
        new = [Interval(utc(2030, 1, 2, h), utc(2030, 1, 2, h + 1)) for h in range(8, 12)]
        existing = [
            Interval(utc(2030, 1, 2, 9, 30), utc(2030, 1, 2, 9, 45)),
            Interval(utc(2030, 1, 2, 11), utc(2030, 1, 2, 13)),
        ]
        assert overlapping(new, existing) == [new[1], new[3]]

    def test_past_intervals_are_those_not_starting_in_the_future(self):
        past, future = (
            Interval(NOW, NOW + timedelta(hours=1)),
            Interval(NOW + timedelta(hours=1), NOW + timedelta(hours=2)),
        )
        assert past_intervals([past, future], NOW) == [past]


class TestExpiredHolds:
    def test_a_hold_whose_appointment_exists_becomes_booked(self):
        assert decide_expired_hold(True, takes_timeslot=True) is HoldOutcome.BOOK

    def test_a_hold_without_an_appointment_is_freed(self):
        assert decide_expired_hold(False) is HoldOutcome.FREE

    def test_a_hold_whose_appointment_was_cancelled_is_freed(self):
        assert decide_expired_hold(True, takes_timeslot=False) is HoldOutcome.FREE

    def test_a_hold_is_never_freed_when_booking_cannot_tell(self):
        assert decide_expired_hold(None) is HoldOutcome.WAIT
        assert decide_expired_hold(True, takes_timeslot=None) is HoldOutcome.WAIT


class TestHoldRefusals:
    reservation = uuid.uuid4()

    def target(self, **changes) -> HoldTarget:
        values = {
            "timeslot_id": 1,
            "doctor_id": 7,
            "start_time": NOW + timedelta(days=1),
            "state": TimeslotState.AVAILABLE,
            "reservation_id": None,
            "doctor_active": True,
        }
        values.update(changes)
        return HoldTarget(**values)

    def check(self, target, patient_id=12):
        return check_hold(target, reservation_id=self.reservation, patient_id=patient_id, now=NOW)

    def test_a_missing_timeslot_or_inactive_doctor_is_not_found(self):
        with pytest.raises(TimeslotNotFound):
            self.check(None)
        with pytest.raises(TimeslotNotFound):
            self.check(self.target(doctor_active=False))

    def test_the_same_reservation_holding_it_again_is_fine(self):
        assert self.check(self.target(state=TimeslotState.HELD, reservation_id=self.reservation))
        assert self.check(self.target(state=TimeslotState.BOOKED, reservation_id=self.reservation))

    def test_a_hold_it_already_has_still_answers_to_the_start_rules_of_now(self):
        # A waitlist offer's hold, booked by its patient after the doctor raised the notice (or
        # after the start came within it): refused like anyone's booking of that time.
        held = {"state": TimeslotState.HELD, "reservation_id": self.reservation}
        with pytest.raises(TooSoon):
            self.check(self.target(**held, start_time=NOW + timedelta(minutes=30), min_notice_minutes=60))
        with pytest.raises(TooFarAhead):
            self.check(self.target(**held, start_time=NOW + timedelta(days=10), booking_horizon_days=7))
        with pytest.raises(TimeslotStarted):
            self.check(self.target(**held, start_time=NOW))

    def test_a_free_timeslot_that_nothing_refuses_is_not_held_yet(self):
        # The hold's UPDATE lost to a release: the caller tries again, it does not answer "held".
        assert self.check(self.target()) is False

    def test_a_doctor_cannot_hold_their_own_timeslot(self):
        with pytest.raises(CannotBookOwnTimeslot):
            self.check(self.target(), patient_id=7)

    def test_a_started_timeslot_cannot_be_held(self):
        with pytest.raises(TimeslotStarted):
            self.check(self.target(start_time=NOW))

    def test_a_timeslot_taken_by_another_reservation_is_not_available(self):
        with pytest.raises(TimeslotNotAvailable):
            self.check(self.target(state=TimeslotState.HELD, reservation_id=uuid.uuid4()))
