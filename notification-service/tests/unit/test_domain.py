"""The rules: event types, the retry schedule, which addresses webhooks may call, reminders."""

from datetime import UTC, datetime, timedelta

import pytest

from notification.domain import (
    DEFAULT_RETRY_DELAYS,
    TargetRefused,
    check_event_types,
    check_target_address,
    next_attempt_delay,
    reminder_due,
    subscribed,
)


def test_star_means_every_type_and_stands_alone():
    assert check_event_types(["*"]) == ["*"]
    assert subscribed(["*"], "waitlist.offered")
    with pytest.raises(ValueError, match="stands alone"):
        check_event_types(["*", "appointment.booked"])


def test_types_are_known_and_deduplicated():
    assert check_event_types(["appointment.booked", "appointment.booked"]) == ["appointment.booked"]
    with pytest.raises(ValueError, match="unknown event type"):
        check_event_types(["appointment.deleted"])
    with pytest.raises(ValueError):
        check_event_types([])


def test_the_first_retry_comes_within_30_seconds_and_the_schedule_spans_more_than_a_day():
    assert next_attempt_delay(DEFAULT_RETRY_DELAYS, 1) <= timedelta(seconds=30)
    delays = [next_attempt_delay(DEFAULT_RETRY_DELAYS, n) for n in range(1, len(DEFAULT_RETRY_DELAYS) + 1)]
    assert delays == sorted(delays)
    assert sum(delays, timedelta()) >= timedelta(hours=24)
    assert next_attempt_delay(DEFAULT_RETRY_DELAYS, len(DEFAULT_RETRY_DELAYS) + 1) is None


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.5",
        "172.16.3.4",
        "192.168.1.1",
        "169.254.169.254",
        "::1",
        "fe80::1",
        "fc00::1",
        "100.64.0.1",
        "::ffff:10.0.0.1",
    ],
)
def test_inside_addresses_are_refused_unless_allowed(address):
    with pytest.raises(TargetRefused):
        check_target_address(address, allow_private=False)
    check_target_address(address, allow_private=True)


@pytest.mark.parametrize("address", ["0.0.0.0", "224.0.0.1", "::"])
def test_addresses_no_receiver_has_are_always_refused(address):
    with pytest.raises(TargetRefused):
        check_target_address(address, allow_private=True)


def test_public_addresses_are_allowed():
    check_target_address("93.184.215.14", allow_private=False)
    check_target_address("2606:2800:21f:cb07:6820:80da:af6b:8b2c", allow_private=False)


START = datetime(2026, 12, 10, 9, 0, tzinfo=UTC)


def test_a_reminder_is_due_from_its_hour_until_the_start():
    booked = START - timedelta(days=5)
    assert not reminder_due(start_time=START, scheduled_at=booked, hours=24, now=START - timedelta(hours=25))
    assert reminder_due(start_time=START, scheduled_at=booked, hours=24, now=START - timedelta(hours=24))
    assert reminder_due(start_time=START, scheduled_at=booked, hours=24, now=START - timedelta(minutes=1))
    assert not reminder_due(start_time=START, scheduled_at=booked, hours=24, now=START)


def test_no_reminder_for_a_time_set_inside_the_reminder_window():
    moved = START - timedelta(hours=3)
    assert not reminder_due(start_time=START, scheduled_at=moved, hours=24, now=START - timedelta(hours=2))
    assert reminder_due(start_time=START, scheduled_at=moved, hours=2, now=START - timedelta(hours=2))
