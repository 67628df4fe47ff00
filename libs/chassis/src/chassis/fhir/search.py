"""FHIR searches: ``_count``/``_page`` paging into ``searchset`` Bundles, date and reference values."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import Depends, Query, Request
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.resource import Resource
from sqlalchemy import ColumnElement, and_

from chassis.errors import ProblemException
from chassis.fhir.resources import MAX_ID, fhir_base
from chassis.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, PageParams
from chassis.timezones import check_representable, day_bounds


def invalid_search(detail: str) -> ProblemException:
    """A 422 about one search parameter (rendered as an OperationOutcome by ``FhirErrors``)."""
    return ProblemException(422, detail, code="invalid_search_parameter")


async def search_page_params(
    count: Annotated[
        int, Query(alias="_count", ge=1, le=MAX_PAGE_SIZE, description="Resources per page, at most 100.")
    ] = DEFAULT_PAGE_SIZE,
    page: Annotated[int, Query(alias="_page", ge=1, le=1_000_000, description="Page number, from 1.")] = 1,
) -> PageParams:
    return PageParams(page=page, page_size=count)


SearchPaging = Annotated[PageParams, Depends(search_page_params)]


def searchset(request: Request, page: PageParams, total: int, resources: Sequence[Resource]) -> Bundle:
    """A ``searchset`` Bundle of one page: ``total`` over all pages, and paging links."""
    url = request.url

    def link(number: int) -> str:
        return str(url.include_query_params(_page=number, _count=page.page_size))

    links = [{"relation": "self", "url": str(url)}]
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


def reference_id(value: str, resource_type: str, *, parameter: str) -> int:
    """The id of a reference search value: ``Type/123``, ``123`` or ``<base>/Type/123``; else 422."""
    found = re.fullmatch(rf"(?:(?:.*/)?{resource_type}/)?([0-9]{{1,19}})", value.strip())
    if found is None or not 1 <= int(found.group(1)) <= MAX_ID:
        raise invalid_search(f"{parameter} must reference a {resource_type} as {resource_type}/<id>.")
    return int(found.group(1))


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
_DATE_VALUE = re.compile(r"(eq|ge|gt|le|lt)?(\d{4}-\d{2}-\d{2})(?:(T[0-9:.]+)(Z|[+-]\d{2}:\d{2})?)?")


def date_bound(value: str, tz: ZoneInfo, *, parameter: str) -> DateBound:
    """Parse ``[prefix]YYYY-MM-DD[Thh:mm[:ss][offset]]``; a day, or a time without an offset,
    is read in the clinic time zone ``tz``. Anything else is a 422."""
    found = _DATE_VALUE.fullmatch(value.strip())
    problem = invalid_search(
        f"{parameter} must be a date or a date-time, optionally prefixed by one of "
        f"{', '.join(DATE_PREFIXES)} (e.g. ge2030-03-04 or lt2030-03-04T12:00:00Z)."
    )
    if found is None:
        raise problem
    prefix, day, clock, offset = found.group(1) or "eq", found.group(2), found.group(3), found.group(4)
    try:
        # Far-past and far-future days would overflow once converted or stepped through.
        check_representable(date.fromisoformat(day))
        if clock is None:
            return DateBound(prefix, *day_bounds(date.fromisoformat(day), tz))
        start = datetime.fromisoformat(day + clock + (offset or "").replace("Z", "+00:00"))
    except ValueError:
        raise problem from None
    if start.tzinfo is None:
        start = start.replace(tzinfo=tz)
    # A value to the minute or second names that whole minute or second.
    precision = timedelta(minutes=1) if clock.count(":") == 1 else timedelta(seconds=1)
    if start.microsecond:
        precision = timedelta(microseconds=1)
    return DateBound(prefix, start, start + precision)
