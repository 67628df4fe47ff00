"""scheduling-service routes: schema in, use case, schema out.

Public routes live under ``/api/timeslots`` and ``/api/doctors/{id}/timeslots``;
``/internal/timeslots/{id}/hold|release`` are booking's (docs/booking-protocol.md),
never routed by the gateway and left out of the public OpenAPI document.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response

from chassis.auth import Principal, require_role
from chassis.db import AppReads, Database
from chassis.errors import problem_responses
from chassis.idempotency import IdempotencyKeyHeader, run_idempotently
from chassis.pagination import Page, Pagination, page_of
from chassis.service_auth import require_service
from chassis.timezones import IsoDate
from scheduling import queries, services
from scheduling.config import Settings
from scheduling.schemas import (
    BulkCreated,
    BulkTimeslotCreate,
    HoldRead,
    HoldRequest,
    ReleaseRequest,
    TimeslotCreate,
    TimeslotRead,
)
from scheduling.services import reservations

router = APIRouter(tags=["timeslots"])
internal_router = APIRouter(prefix="/internal", include_in_schema=False)
# Only booking holds and releases timeslots, with its service token (never a user's token).
FromBooking = Annotated[str, Depends(require_service("booking"))]


async def _db(request: Request) -> Database:
    return request.app.state.db


async def _settings(request: Request) -> Settings:
    return request.app.state.settings


AppDb = Annotated[Database, Depends(_db)]
AppSettings = Annotated[Settings, Depends(_settings)]
DoctorCaller = Annotated[Principal, Depends(require_role("doctor"))]
PatientOrAdmin = Annotated[Principal, Depends(require_role("patient", "admin"))]
# Ids are positive 64-bit integers; anything else is a 422 before any lookup.
TimeslotId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The timeslot's id.")]
DoctorId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The doctor's id (their user id).")]


Day = Annotated[IsoDate | None, Query(description="One calendar day in the clinic time zone.")]
# "{timeslot_id:int}" only matches digits: /api/timeslots/bulk/ never reaches the id routes
# (so GET on it is a 405, not a 422 about the id), and a non-numeric id is simply not found.
BY_ID = "/api/timeslots/{timeslot_id:int}/"


# Request examples, offered by Swagger UI's "Try it out" and shown by Redoc.
TIMESLOT_EXAMPLES = {
    "utc": {
        "summary": "Half an hour, in UTC",
        "value": {"start_time": "2030-03-04T09:00:00Z", "end_time": "2030-03-04T09:30:00Z"},
    },
    "local": {
        "summary": "An hour, in the clinic time zone (no offset)",
        "value": {"start_time": "2030-03-04T14:00:00", "end_time": "2030-03-04T15:00:00"},
    },
}
BULK_EXAMPLES = {
    "week": {
        "summary": "A working week, 09:00-17:00, 30-minute timeslots",
        "value": {
            "date_from": "2030-03-04",
            "date_to": "2030-03-08",
            "weekdays": [0, 1, 2, 3, 4],
            "day_start": "09:00",
            "day_end": "17:00",
            "slot_minutes": 30,
        },
    },
    "mornings": {
        "summary": "Tuesday and Thursday mornings, 20 minutes and a 10-minute break",
        "value": {
            "date_from": "2030-03-04",
            "date_to": "2030-03-31",
            "weekdays": [1, 3],
            "day_start": "08:00",
            "day_end": "12:00",
            "slot_minutes": 20,
            "break_minutes": 10,
        },
    },
}


@router.post(
    "/api/timeslots/",
    status_code=201,
    response_model=TimeslotRead,
    summary="Publish a timeslot",
    responses=problem_responses(401, 403, 409, 422),
)
async def create_timeslot(
    request: Request,
    body: Annotated[TimeslotCreate, Body(openapi_examples=TIMESLOT_EXAMPLES)],
    doctor: DoctorCaller,
    db: AppDb,
    settings: AppSettings,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Any:
    """A free timeslot of 5 minutes to 12 hours, starting in the future, overlapping none of yours.

    With an `Idempotency-Key`, a retry gets the first answer again and creates nothing twice."""
    timeslot = await run_idempotently(
        request,
        idempotency_key,
        doctor.id,
        db,
        lambda record: services.create_timeslot(
            db, doctor.id, body.start_time, body.end_time, tz=settings.tz, record=record
        ),
        serialize=lambda created: TimeslotRead.of(created).model_dump_json(),
        status_code=201,
    )
    return timeslot if isinstance(timeslot, Response) else TimeslotRead.of(timeslot)


@router.post(
    "/api/timeslots/bulk/",
    status_code=201,
    response_model=BulkCreated,
    summary="Publish a working pattern",
    responses=problem_responses(401, 403, 409, 422),
)
async def create_timeslots_bulk(
    request: Request,
    body: Annotated[BulkTimeslotCreate, Body(openapi_examples=BULK_EXAMPLES)],
    doctor: DoctorCaller,
    db: AppDb,
    settings: AppSettings,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Any:
    """Every timeslot of the pattern (clinic time zone, at most 500), or none: a 409 lists the
    overlapping times in ``conflicts``, a 422 lists past ones in ``past``.

    Slots follow local wall-clock time across daylight-saving changes; a slot that
    would fall into the spring-forward gap or straddle the repeated fall-back hour
    is skipped. With an `Idempotency-Key`, a retry gets the first answer again."""
    created = await run_idempotently(
        request,
        idempotency_key,
        doctor.id,
        db,
        lambda record: services.create_timeslots_bulk(
            db, doctor.id, body.pattern(), tz=settings.tz, record=record
        ),
        serialize=lambda timeslots: _bulk(timeslots).model_dump_json(),
        status_code=201,
    )
    return created if isinstance(created, Response) else _bulk(created)


def _bulk(timeslots: list) -> BulkCreated:
    return BulkCreated(created=[TimeslotRead.of(t) for t in timeslots])


@router.get(
    "/api/timeslots/",
    response_model=Page[TimeslotRead],
    summary="List your timeslots",
    responses=problem_responses(401, 403, 422),
)
def list_own_timeslots(
    request: Request,
    doctor: DoctorCaller,
    db: AppDb,
    settings: AppSettings,
    page: Pagination,
    date: Day = None,
    is_available: Annotated[bool | None, Query(description="true: free only; false: held or booked.")] = None,
) -> dict:
    """Your own timeslots, earliest first."""
    count, rows = queries.list_own_timeslots(
        db, doctor.id, page, tz=settings.tz, day=date, is_available=is_available
    )
    return page_of(request, page, count, [TimeslotRead.of(t) for t in rows])


@router.get(
    BY_ID,
    response_model=TimeslotRead,
    summary="Read one of your timeslots",
    responses=problem_responses(401, 403, 404, 422),
)
def get_own_timeslot(timeslot_id: TimeslotId, doctor: DoctorCaller, db: AppDb) -> TimeslotRead:
    """One of your own timeslots, free or not; another doctor's is 404."""
    return TimeslotRead.of(queries.get_own_timeslot(db, doctor.id, timeslot_id))


@router.delete(
    BY_ID,
    status_code=204,
    summary="Delete one of your free timeslots",
    responses=problem_responses(401, 403, 404, 409, 422),
)
def delete_own_timeslot(timeslot_id: TimeslotId, doctor: DoctorCaller, db: AppDb) -> Response:
    """Only while it is available: a held or booked timeslot is 409."""
    services.delete_own_timeslot(db, doctor.id, timeslot_id)
    return Response(status_code=204)


@router.get(
    "/api/doctors/{doctor_id}/timeslots/",
    response_model=Page[TimeslotRead],
    summary="List a doctor's free timeslots",
    responses=problem_responses(401, 403, 404, 422),
)
async def list_free_timeslots(
    request: Request,
    doctor_id: DoctorId,
    _caller: PatientOrAdmin,
    reads: AppReads,
    settings: AppSettings,
    page: Pagination,
    date: Day = None,
    date_from: Annotated[
        IsoDate | None, Query(description="First day (clinic time zone), inclusive.")
    ] = None,
    date_to: Annotated[IsoDate | None, Query(description="Last day (clinic time zone), inclusive.")] = None,
) -> dict:
    """An active doctor's available timeslots that start in the future, earliest first."""
    count, rows = await queries.list_free_timeslots(
        reads,
        doctor_id,
        page,
        tz=settings.tz,
        day=date,
        date_from=date_from,
        date_to=date_to,
    )
    return page_of(request, page, count, rows)


@internal_router.post("/timeslots/{timeslot_id}/hold", response_model=HoldRead)
async def hold_timeslot(
    timeslot_id: TimeslotId,
    body: HoldRequest,
    _caller: FromBooking,
    reads: AppReads,
    db: AppDb,
    settings: AppSettings,
) -> HoldRead:
    """Hold a timeslot for booking's reservation of ``body.patient_id`` (booking checked the patient)."""
    # Every booking comes through here: one statement on the event loop.
    timeslot = await reservations.hold_timeslot(
        reads,
        db,
        timeslot_id,
        reservation_id=body.reservation_id,
        patient_id=body.patient_id,
        hold_seconds=body.hold_seconds or settings.hold_seconds,
        doctor_id=body.doctor_id,
    )
    return HoldRead.of(timeslot)


@internal_router.post("/timeslots/{timeslot_id}/release", status_code=204)
def release_hold(timeslot_id: TimeslotId, body: ReleaseRequest, _caller: FromBooking, db: AppDb) -> Response:
    """Free a timeslot held by this reservation; anything else is a no-op."""
    reservations.release_hold(db, timeslot_id, reservation_id=body.reservation_id)
    return Response(status_code=204)
