"""Django REST Framework style page-number pagination.

``{"count": N, "next": url|null, "previous": url|null, "results": [...]}`` with
``?page=`` (from 1) and ``?page_size=`` (default 20, at most 100). ``next`` and
``previous`` are absolute URLs built from the request as the gateway forwarded it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Generic, TypeVar

import pydantic_core
from fastapi import Depends, Query, Request, Response
from pydantic import BaseModel, Field

T = TypeVar("T")

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


class Page(BaseModel, Generic[T]):
    count: int = Field(description="How many items match, over all pages.", examples=[42])
    next: str | None = Field(description="The next page's URL, or null on the last page.")
    previous: str | None = Field(description="The previous page's URL, or null on the first page.")
    results: list[T]


@dataclass(frozen=True, slots=True)
class PageParams:
    page: int
    page_size: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.page_size

    @property
    def limit(self) -> int:
        return self.page_size


async def page_params(
    page: Annotated[int, Query(ge=1, le=1_000_000, description="Page number, from 1.")] = 1,
    page_size: Annotated[
        int, Query(ge=1, le=MAX_PAGE_SIZE, description=f"Items per page, at most {MAX_PAGE_SIZE}.")
    ] = DEFAULT_PAGE_SIZE,
) -> PageParams:
    return PageParams(page=page, page_size=page_size)


Pagination = Annotated[PageParams, Depends(page_params)]


def known_total(params: PageParams, page_length: int) -> int | None:
    """How many items match in all, when the page itself tells (else None: count them).

    A page shorter than ``page_size`` is the last one, so the total is its offset plus its
    length (the same snapshot as the page, even); only a full page, or an empty page past
    the first, needs a count query.
    """
    if page_length < params.limit and (page_length or params.offset == 0):
        return params.offset + page_length
    return None


def page_of(request: Request, params: PageParams, count: int, results: list[T]) -> dict:
    """The response body of one page (validated by the route's ``Page[...]`` model)."""

    def link(page: int) -> str:
        url = request.url
        if page == 1:
            return str(url.remove_query_params("page"))
        return str(url.include_query_params(page=page))

    has_next = params.offset + len(results) < count
    return {
        "count": count,
        "next": link(params.page + 1) if has_next else None,
        "previous": link(params.page - 1) if params.page > 1 else None,
        "results": results,
    }


def page_response(request: Request, params: PageParams, count: int, results: list[dict]) -> Response:
    """``page_of`` answered as JSON as it is, without the route's ``Page[...]`` model.

    Only for a named hot read (``make bench``) whose rows already have the model's shape
    (plain dicts of JSON types): FastAPI would otherwise validate every row again through the
    route's ``response_model`` and serialise the result, work that shows in the read's CPU. The
    route keeps its ``response_model`` for the OpenAPI document, and a test of the route holds
    the answer to that model (validated, it dumps to the same JSON).
    """
    body = pydantic_core.to_json(page_of(request, params, count, results))
    return Response(body, media_type="application/json")
