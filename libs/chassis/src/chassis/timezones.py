"""Datetimes in the clinic time zone.

Responses are always UTC. A request datetime without an offset means wall-clock
time in ``CLINIC_TIMEZONE``; ``?date=YYYY-MM-DD`` means that calendar day there.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


def as_aware(value: datetime, tz: ZoneInfo) -> datetime:
    """``value`` as an aware UTC datetime, reading a naive value in ``tz``."""
    if value.tzinfo is None or value.utcoffset() is None:
        value = value.replace(tzinfo=tz)
    return value.astimezone(UTC)


def day_bounds(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The half-open UTC interval ``[start, end)`` of calendar day ``day`` in ``tz``.

    Correct on daylight-saving days, which last 23 or 25 hours.
    """
    start = datetime.combine(day, time.min, tzinfo=tz)
    end = datetime.combine(day + timedelta(days=1), time.min, tzinfo=tz)
    return start.astimezone(UTC), end.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)
