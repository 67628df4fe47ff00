"""The waitlist's and the calendar feed's pure rules."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from icalendar import Calendar

from booking.adapters.ics import FeedItem, in_feed, render_feed
from booking.domain import HOLD_GRACE, check_range, hold_seconds, offer_expiry, offer_stands
from booking.errors import InvalidWaitlistRange

TODAY = date(2030, 5, 10)
NOW = datetime(2030, 5, 10, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("date_from", "date_to"),
    [(TODAY, TODAY), (TODAY, TODAY + timedelta(days=30)), (TODAY + timedelta(days=2),) * 2],
)
def test_a_range_from_today_on_in_order_may_be_joined(date_from, date_to):
    check_range(date_from, date_to, today=TODAY)


@pytest.mark.parametrize(
    ("date_from", "date_to", "field"),
    [
        (TODAY - timedelta(days=1), TODAY, "date_from"),
        (TODAY + timedelta(days=2), TODAY + timedelta(days=1), "date_to"),
        (TODAY - timedelta(days=3), TODAY - timedelta(days=2), "date_from"),
    ],
)
def test_a_range_in_the_past_or_reversed_is_refused(date_from, date_to, field):
    with pytest.raises(InvalidWaitlistRange) as refused:
        check_range(date_from, date_to, today=TODAY)
    assert field in [error["field"] for error in refused.value.extra["errors"]]


def test_an_offer_stands_while_open_and_not_expired_even_before_the_sweeper_ran():
    expires = offer_expiry(NOW, 15)
    assert expires == NOW + timedelta(minutes=15)
    assert offer_stands("open", expires, NOW)
    assert not offer_stands("open", expires, expires)
    assert not offer_stands("expired", expires, NOW)


def test_scheduling_holds_an_offer_past_its_expiry_so_only_booking_ends_a_standing_offer():
    expires = offer_expiry(NOW, 15)
    assert NOW + timedelta(seconds=hold_seconds(expires, NOW)) >= expires + HOLD_GRACE
    assert hold_seconds(NOW - timedelta(hours=1), NOW) >= 1


def test_a_feed_keeps_active_appointments_and_cancelled_ones_for_thirty_days():
    soon = NOW + timedelta(days=1)
    assert in_feed("pending", end_time=soon, updated_at=NOW, now=NOW)
    assert in_feed("confirmed", end_time=NOW - timedelta(days=29), updated_at=NOW, now=NOW)
    assert in_feed("cancelled", end_time=soon, updated_at=NOW - timedelta(days=29), now=NOW)
    assert not in_feed("cancelled", end_time=soon, updated_at=NOW - timedelta(days=31), now=NOW)
    assert not in_feed("pending", end_time=NOW - timedelta(days=31), updated_at=NOW, now=NOW)
    assert not in_feed("completed", end_time=soon, updated_at=NOW, now=NOW)


def test_a_feed_is_rfc_5545_with_stable_uids_utc_times_and_mapped_statuses():
    items = [
        FeedItem(7, NOW, NOW + timedelta(minutes=30), status, "Dora Doctor", revision, NOW)
        for status, revision in [("pending", 0), ("confirmed", 1), ("cancelled", 2)]
    ]
    calendar = Calendar.from_ical(render_feed(items, host="clinic.example", name="Clinic"))
    events = calendar.walk("VEVENT")

    assert [str(e["STATUS"]) for e in events] == ["TENTATIVE", "CONFIRMED", "CANCELLED"]
    assert {str(e["UID"]) for e in events} == {"appointment-7@clinic.example"}
    assert [int(e["SEQUENCE"]) for e in events] == [0, 1, 2]
    assert events[0]["DTSTART"].dt == NOW and events[0]["DTSTART"].dt.tzinfo is not None
    assert str(events[0]["SUMMARY"]) == "Appointment with Dora Doctor"
    assert b"DTSTART:20300510T120000Z" in render_feed(items[:1], host="h", name="n")
