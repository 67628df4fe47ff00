"""Datetimes in the clinic time zone.

Responses are always UTC. A request datetime without an offset means wall-clock
time in ``CLINIC_TIMEZONE``; ``?date=YYYY-MM-DD`` means that calendar day there.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from pydantic import BeforeValidator

# Request dates and datetimes stay a week inside Python's range (years 1 to 9999), so that
# any UTC offset, a day's end or a working pattern's steps stay representable; PostgreSQL's
# own range is wider, so everything inside this one can be stored.
FIRST_DAY = date(1, 1, 8)
LAST_DAY = date(9999, 12, 24)
_EARLIEST = datetime.min.replace(tzinfo=UTC)
_LATEST = datetime.max.replace(tzinfo=UTC)


def day_bounds(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The half-open UTC interval ``[start, end)`` of calendar day ``day`` in ``tz``.

    Correct on daylight-saving days, which last 23 or 25 hours. At the ends of the
    calendar (0001-01-01, 9999-12-31) the bounds stop at the earliest and latest
    representable instants instead of overflowing.
    """
    try:
        start = datetime.combine(day, time.min, tzinfo=tz).astimezone(UTC)
    except OverflowError:
        start = _EARLIEST
    try:
        end = datetime.combine(day + timedelta(days=1), time.min, tzinfo=tz).astimezone(UTC)
    except OverflowError:
        end = _LATEST
    return start, end


def check_representable(value: date | datetime) -> date | datetime:
    """``value`` if it lies between ``FIRST_DAY`` and ``LAST_DAY``; else ``ValueError`` (a 422).

    For request fields (pydantic ``AfterValidator``): far-past and far-future values would
    overflow once converted to UTC or stepped through, instead of being refused.
    """
    day = value.date() if isinstance(value, datetime) else value
    if not FIRST_DAY <= day <= LAST_DAY:
        raise ValueError(f"must be between {FIRST_DAY.isoformat()} and {LAST_DAY.isoformat()}")
    return value


# What a request's date and date-time may look like. Without these, pydantic's lax mode reads a
# number, or a string of digits ("1900000000"), as a Unix timestamp, and a date as a date-time.
_DATE_TIME_TEXT = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ]"  # the date
    r"[0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?"  # the time, its seconds and fraction optional
    r"(?:[Zz]|[+-][0-9]{2}:[0-9]{2})?"  # the offset, optional
)
_DATE_TEXT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def date_time_text(value: Any) -> Any:
    """A request's date-time as RFC 3339 text (seconds and offset may be left out: without an
    offset it is read in the clinic time zone); else ``ValueError`` (a 422). A pydantic
    ``BeforeValidator``."""
    if not isinstance(value, str) or _DATE_TIME_TEXT.fullmatch(value) is None:
        raise ValueError("must be an RFC 3339 date-time, such as 2030-03-04T09:30:00Z")
    return value


def date_text(value: Any) -> Any:
    """A request's date as ``YYYY-MM-DD``; else ``ValueError`` (a 422). A pydantic ``BeforeValidator``."""
    if not isinstance(value, str) or _DATE_TEXT.fullmatch(value) is None:
        raise ValueError("must be a date in the form YYYY-MM-DD")
    return value


# A request's calendar day, ``YYYY-MM-DD`` only (a query parameter's or a body field's type).
IsoDate = Annotated[date, BeforeValidator(date_text)]


def utcnow() -> datetime:
    return datetime.now(UTC)
