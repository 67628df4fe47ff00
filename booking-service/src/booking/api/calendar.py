"""Calendar feed routes (spec: Calendar feeds).

``/api/calendar/feed/`` and ``/api/calendar/feed/rotate/`` are a doctor's or patient's, behind
the gateway's token check. ``/api/calendar/feed.ics?token=<secret>`` is public: calendar
apps send no Authorization header, so the secret is the credential (the gateway routes it
without ForwardAuth, with a rate limit). It travels in the query string, which neither the
gateway's nor the services' access logs record.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from booking.adapters.ics import render_feed
from booking.errors import FeedNotFound
from booking.schemas import FeedUrl
from booking.services import feeds
from chassis.auth import Principal, require_role
from chassis.db import AppDatabase
from chassis.errors import problem_responses

router = APIRouter(prefix="/api/calendar", tags=["calendar"])
DoctorOrPatient = Annotated[Principal, Depends(require_role("doctor", "patient"))]
FEED_PATH = "/api/calendar/feed.ics"
CALENDAR_NAME = "Clinic appointments"


def _keys(request: Request) -> feeds.FeedKeys:
    return request.app.state.feed_keys


def _url(request: Request, secret: str) -> FeedUrl:
    return FeedUrl(url=str(request.base_url).rstrip("/") + f"{FEED_PATH}?token={secret}")


@router.get(
    "/feed/", response_model=FeedUrl, summary="My calendar feed", responses=problem_responses(401, 403)
)
async def get_feed(caller: DoctorOrPatient, db: AppDatabase, request: Request) -> FeedUrl:
    """The caller's private iCalendar feed URL (made on first use): the appointments as patient, or
    as doctor. Subscribe to it in a calendar app; it needs no Authorization header."""
    secret = await run_in_threadpool(
        feeds.feed_secret, db, _keys(request), user_id=caller.id, role=caller.role
    )
    return _url(request, secret)


@router.post(
    "/feed/rotate/",
    response_model=FeedUrl,
    summary="A new calendar feed URL",
    responses=problem_responses(401, 403),
)
async def rotate_feed(caller: DoctorOrPatient, db: AppDatabase, request: Request) -> FeedUrl:
    """A new private feed URL; the previous one stops working at once (404)."""
    secret = await run_in_threadpool(
        feeds.feed_secret, db, _keys(request), user_id=caller.id, role=caller.role, rotate=True
    )
    return _url(request, secret)


@router.get(
    "/feed.ics",
    summary="A calendar feed (the private URL)",
    response_class=Response,
    responses={200: {"content": {"text/calendar": {}}}, **problem_responses(404, 422)},
)
async def read_feed(
    db: AppDatabase, request: Request, token: Annotated[str, Query(min_length=1, max_length=100)]
) -> Response:
    """RFC 5545: one VEVENT per appointment (pending, confirmed, or cancelled in the last 30 days),
    UID `appointment-{id}@<host>`, times in UTC, SEQUENCE growing with every change. A rotated URL is 404."""
    items = await run_in_threadpool(feeds.feed_items, db, _keys(request), token)
    if items is None:
        raise FeedNotFound("There is no such calendar feed.")
    body = render_feed(items, host=request.url.hostname or "clinic", name=CALENDAR_NAME)
    return Response(
        body,
        media_type="text/calendar; charset=utf-8",
        headers={"Cache-Control": "no-store", "Content-Disposition": 'inline; filename="clinic.ics"'},
    )
