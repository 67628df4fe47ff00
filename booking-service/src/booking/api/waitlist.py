"""The waitlist's routes: join, list own entries, leave (spec: Waitlist)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response
from fastapi.concurrency import run_in_threadpool

from booking.adapters.scheduling_client import SchedulingClient
from booking.api import PatientOrAdmin, scheduling_client
from booking.schemas import MAX_ID, EntryRead, WaitlistJoin
from booking.services import waitlist as services
from chassis.auth import Principal, require_role
from chassis.db import AppDatabase
from chassis.errors import problem_responses
from chassis.pagination import Page, Pagination, page_of

router = APIRouter(prefix="/api/waitlist", tags=["waitlist"])
Patient = Annotated[Principal, Depends(require_role("patient"))]
EntryId = Annotated[int, Path(ge=1, le=MAX_ID, description="The waitlist entry's id.")]


@router.post(
    "/",
    status_code=201,
    response_model=EntryRead,
    summary="Wait for a doctor's timeslot",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def join_waitlist(
    body: WaitlistJoin, caller: Patient, db: AppDatabase, request: Request
) -> services.EntryView:
    """Wait for a timeslot of this doctor starting on one of the days `date_from`..`date_to` (clinic
    time zone). When one becomes bookable, the earliest entry in line gets an offer: the timeslot is held
    for its patient for `WAITLIST_OFFER_MINUTES`. Past or reversed ranges are 422, an unknown doctor 404,
    waiting twice over the same days 409."""
    return await run_in_threadpool(
        services.join_waitlist,
        db,
        patient_id=caller.id,
        doctor_id=body.doctor_id,
        date_from=body.date_from,
        date_to=body.date_to,
        tz=request.app.state.settings.tz,
    )


@router.get(
    "/me/",
    response_model=Page[EntryRead],
    summary="My waitlist entries",
    responses=problem_responses(401, 403, 422),
)
async def list_my_entries(caller: Patient, db: AppDatabase, request: Request, pagination: Pagination) -> dict:
    """The patient's waiting entries, oldest first, each with its open offer (or null)."""
    count, entries = await run_in_threadpool(services.list_own_entries, db, caller.id, pagination)
    return page_of(request, pagination, count, entries)


@router.delete(
    "/{entry_id:int}/",
    status_code=204,
    response_class=Response,
    summary="Leave the waitlist",
    responses=problem_responses(401, 403, 404, 422),
)
async def leave_waitlist(
    entry_id: EntryId,
    caller: PatientOrAdmin,
    db: AppDatabase,
    scheduling: Annotated[SchedulingClient, Depends(scheduling_client)],
) -> Response:
    """End an entry (its patient or an admin); a timeslot offered to it passes to the next in line."""
    await run_in_threadpool(services.leave_waitlist, db, scheduling, entry_id, caller)
    return Response(status_code=204)
