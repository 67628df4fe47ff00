"""FHIR searches: ``_count``/``_page`` paging into ``searchset`` Bundles, date, token and reference values."""

from __future__ import annotations

import calendar
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import Depends, Query, Request
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.resource import Resource
from sqlalchemy import ColumnElement, and_

from chassis.errors import ProblemException
from chassis.fhir.resources import FHIR_ID, fhir_base, our_id
from chassis.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, PageParams
from chassis.timezones import check_representable, day_bounds


def invalid_search(detail: str) -> ProblemException:
    """A 422 about one search parameter (rendered as an OperationOutcome by ``FhirErrors``)."""
    return ProblemException(422, detail, code="invalid_search_parameter")


async def search_page_params(
    count: Annotated[
        int,
        Query(
            alias="_count",
            ge=0,
            description=f"Resources per page; more than {MAX_PAGE_SIZE} is read as {MAX_PAGE_SIZE}, "
            "0 counts only (like _summary=count).",
        ),
    ] = DEFAULT_PAGE_SIZE,
    page: Annotated[int, Query(alias="_page", ge=1, le=1_000_000, description="Page number, from 1.")] = 1,
) -> PageParams:
    """FHIR R4's ``_count``: a hint the server caps at its maximum (the ``next`` link then carries
    the ``_count`` it used), never a reason to refuse; ``_count=0`` asks for the total only."""
    return PageParams(page=page, page_size=min(count, MAX_PAGE_SIZE))


SearchPaging = Annotated[PageParams, Depends(search_page_params)]


def searchset(request: Request, page: PageParams, total: int, resources: Sequence[Resource]) -> Bundle:
    """A ``searchset`` Bundle of one page: ``total`` over all pages, and paging links.

    With ``_count=0`` (a page of no resources) only the total: no entries and only the self link."""
    url = request.url

    def link(number: int) -> str:
        return str(url.include_query_params(_page=number, _count=page.page_size))

    links = [{"relation": "self", "url": str(url)}]
    if page.page_size == 0:
        resources = ()
    else:
        if page.offset + len(resources) < total:
            links.append({"relation": "next", "url": link(page.page + 1)})
        if page.page > 1:
            links.append({"relation": "previous", "url": link(page.page - 1)})
    base = fhir_base(request)
    entries = [
        {
            "fullUrl": f"{base}/{resource.get_resource_type()}/{resource.id}",
            "resource": resource,
            "search": {"mode": "match"},
        }
        for resource in resources
    ]
    return Bundle(type="searchset", total=total, link=links, entry=entries or None)


def reference_id(value: str, resource_type: str, *, parameter: str) -> int | None:
    """The id of a reference search value: ``Type/123``, ``123`` or ``<base>/Type/123``.

    None when the value is a valid reference whose id cannot be one of ours (``Type/abc``,
    ``Type/007``, ``Type/0``, as ``our_id`` reads ids and a read answers 404 for them): nothing
    references it, so the search finds nothing. Another type, or no valid FHIR id, is a 422."""
    found = re.fullmatch(rf"(?:(?:.*/)?{resource_type}/)?({FHIR_ID})", value.strip())
    if found is None:
        raise invalid_search(f"{parameter} must reference a {resource_type} as {resource_type}/<id>.")
    return our_id(found.group(1))


def token_codes(value: str, codes: Collection[str], *, system: str, parameter: str) -> set[str]:
    """The codes a token search value asks for (any of them matches): comma-separated
    alternatives, each ``code``, ``<system>|code`` or ``<system>|`` (every code of ``system``).
    Another system, an unknown code or an empty alternative is a 422."""
    wanted: set[str] = set()
    for alternative in value.split(","):
        code = alternative.strip()
        if "|" in code:
            named, code = code.split("|", 1)
            if named != system:
                raise invalid_search(
                    f"{parameter} takes the codes of {system} (as {system}|<code> or <code>)."
                )
            if not code:
                wanted.update(codes)
                continue
        if code not in codes:
            raise invalid_search(f"{parameter} must be one of {', '.join(codes)} (several: comma-separated).")
        wanted.add(code)
    return wanted


@dataclass(frozen=True, slots=True)
class DateBound:
    """One ``date`` search value: a comparison prefix and the range of time the value names."""

    prefix: str
    start: datetime
    end: datetime  # exclusive

    def condition(self, column: ColumnElement[datetime]) -> ColumnElement[bool]:
        """Whether an instant ``column`` matches (FHIR's prefixes on a point in time)."""
        if self.prefix == "eq":
            return and_(column >= self.start, column < self.end)
        if self.prefix == "ge":
            return column >= self.start
        if self.prefix == "gt":
            return column >= self.end
        if self.prefix == "le":
            return column < self.end
        return column < self.start  # lt


DATE_PREFIXES = ("eq", "ge", "gt", "le", "lt")
_DATE_VALUE = re.compile(
    r"(eq|ge|gt|le|lt)?([0-9]{4})(?:-([0-9]{2})(?:-([0-9]{2})"
    r"(?:(T[0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?)(Z|[+-][0-9]{2}:[0-9]{2})?)?)?)?"
)


def date_bound(value: str, tz: ZoneInfo, *, parameter: str) -> DateBound:
    """Parse ``[prefix]YYYY[-MM[-DD[Thh:mm[:ss][offset]]]]``: a year, a month or a day names all of
    it in the clinic time zone ``tz``, as does a time without an offset. Anything else is a 422."""
    found = _DATE_VALUE.fullmatch(value.strip())
    problem = invalid_search(
        f"{parameter} must be a date (a year, a month or a day) or a date-time, optionally prefixed by "
        f"one of {', '.join(DATE_PREFIXES)} (e.g. ge2030-03, ge2030-03-04 or lt2030-03-04T12:00:00Z)."
    )
    if found is None:
        raise problem
    prefix, year, month, day, clock, offset = found.groups()
    prefix = prefix or "eq"
    try:
        if clock is None:
            first, last = _calendar_range(int(year), int(month) if month else None, int(day) if day else None)
            # Far-past and far-future days would overflow once converted or stepped through.
            check_representable(first)
            check_representable(last)
            return DateBound(prefix, day_bounds(first, tz)[0], day_bounds(last, tz)[1])
        check_representable(date(int(year), int(month), int(day)))
        start = datetime.fromisoformat(f"{year}-{month}-{day}{clock}{(offset or '').replace('Z', '+00:00')}")
    except ValueError:
        raise problem from None
    if start.tzinfo is None:
        start = start.replace(tzinfo=tz)
    # A value to the minute or second names that whole minute or second.
    precision = timedelta(minutes=1) if clock.count(":") == 1 else timedelta(seconds=1)
    if start.microsecond:
        precision = timedelta(microseconds=1)
    return DateBound(prefix, start, start + precision)


def _calendar_range(year: int, month: int | None, day: int | None) -> tuple[date, date]:
    """The first and last day of a year, a month or a day (a ``ValueError`` when there is none)."""
    if month is None:
        return date(year, 1, 1), date(year, 12, 31)
    if day is None:
        return date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])
    return date(year, month, day), date(year, month, day)
