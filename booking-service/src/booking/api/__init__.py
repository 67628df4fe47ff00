"""booking-service routes: schema in → use case → schema out.

Public routes live under ``/api/appointments``; ``/internal/reservations`` is
for scheduling's hold sweeper and is never routed by the gateway.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response

from booking import queries, services
from booking.adapters.scheduling_client import SchedulingClient
from booking.domain import AppointmentStatus
from booking.errors import ReservationNotFound
from booking.queries import AppointmentFilters, AppointmentView
from booking.schemas import (
    MAX_ID,
    AppointmentCreate,
    AppointmentRead,
    HistoryEntryRead,
    RescheduleRequest,
    ReservationRead,
    StatusChange,
)
from chassis.auth import Principal, require_role
from chassis.db import AppDatabase, AppReads, DbSession
from chassis.errors import problem_responses
from chassis.idempotency import IdempotencyKeyHeader, run_idempotently
from chassis.pagination import Page, Pagination, page_of
from chassis.reads import FastReads
from chassis.service_auth import require_service
from chassis.timezones import IsoDate

router = APIRouter(prefix="/api/appointments", tags=["appointments"])
internal_router = APIRouter(prefix="/internal", include_in_schema=False)
# Only scheduling's hold sweeper asks about reservations, with its service token.
FromScheduling = Annotated[str, Depends(require_service("scheduling"))]

Patient = Annotated[Principal, Depends(require_role("patient"))]
Admin = Annotated[Principal, Depends(require_role("admin"))]
DoctorOrPatient = Annotated[Principal, Depends(require_role("doctor", "patient"))]
DoctorOrAdmin = Annotated[Principal, Depends(require_role("doctor", "admin"))]
PatientOrAdmin = Annotated[Principal, Depends(require_role("patient", "admin"))]
AnyRole = Annotated[Principal, Depends(require_role("admin", "doctor", "patient"))]

AppointmentId = Annotated[int, Path(ge=1, le=MAX_ID, description="The appointment's id.")]
StatusFilter = Annotated[AppointmentStatus | None, Query(description="Only appointments in this status.")]
DayFilter = Annotated[
    IsoDate | None,
    Query(alias="date", description="Only appointments starting on this day (YYYY-MM-DD, clinic time zone)."),
]
UserFilter = Annotated[int | None, Query(ge=1, le=MAX_ID)]

# Request examples, offered by Swagger UI's "Try it out" and shown by Redoc.
BOOKING_EXAMPLES = {
    "reason": {
        "summary": "A timeslot, with the reason for the visit",
        "value": {"timeslot_id": 42, "reason": "Persistent cough for two weeks."},
    },
    "bare": {"summary": "Only the timeslot", "value": {"timeslot_id": 42}},
}
STATUS_EXAMPLES = {
    "confirm": {"summary": "Confirm a pending appointment", "value": {"status": "confirmed"}},
    "cancel": {
        "summary": "Cancel, saying why",
        "value": {"status": "cancelled", "cancellation_reason": "The doctor is ill today."},
    },
    "complete": {"summary": "The visit took place (once it has started)", "value": {"status": "completed"}},
    "no_show": {"summary": "The patient did not come (once it has started)", "value": {"status": "no_show"}},
}

RESCHEDULE_EXAMPLES = {
    "move": {"summary": "Move to another timeslot of the same doctor", "value": {"timeslot_id": 43}},
}


def _appointment_json(view: AppointmentView) -> str:
    # What the route answers, stored for an Idempotency-Key replay.
    return AppointmentRead.model_validate(view).model_dump_json()


# "{appointment_id:int}" only matches digits: /api/appointments/me/ never reaches the id routes
# (so DELETE on it is a 405, not a 422 about the id), and a non-numeric id is simply not found.
BY_ID = "/{appointment_id:int}/"


async def scheduling_client(request: Request) -> SchedulingClient:
    return request.app.state.scheduling


def _one(status: AppointmentStatus | None) -> frozenset[AppointmentStatus] | None:
    """The list's ``?status=``: one status, or any."""
    return None if status is None else frozenset({status})


async def _page(
    request: Request,
    reads: FastReads,
    pagination: Pagination,
    scope: Principal | None,
    filters: AppointmentFilters,
) -> dict:
    count, results = await queries.list_appointments(
        reads,
        scope=scope,
        filters=filters,
        tz=request.app.state.settings.tz,
        page=pagination,
    )
    return page_of(request, pagination, count, results)


@router.post(
    "/",
    status_code=201,
    response_model=AppointmentRead,
    summary="Book a timeslot",
    responses=problem_responses(401, 403, 404, 409, 422, 503),
)
async def book_appointment(
    request: Request,
    body: Annotated[AppointmentCreate, Body(openapi_examples=BOOKING_EXAMPLES)],
    caller: Patient,
    db: AppDatabase,
    scheduling: Annotated[SchedulingClient, Depends(scheduling_client)],
    idempotency_key: IdempotencyKeyHeader = None,
) -> AppointmentView:
    """Book a free timeslot: 201 means the timeslot is the patient's (status `pending`).

    Patients only. The timeslot must exist (404), be free (409) and start in the future and
    within the doctor's booking policy (422); a patient at the doctor's per-patient limit gets 409.
    When several patients book the same timeslot at once, exactly one gets 201 and the others 409.
    With an `Idempotency-Key`, a retry gets the first answer again and books nothing twice."""
    # The whole use case (a call to scheduling, then a transaction) in one hop to a database
    # thread; the response is validated here, on the event loop, without a second hop.
    return await run_idempotently(
        request,
        idempotency_key,
        caller.id,
        db,
        lambda record: services.book_appointment(
            db,
            scheduling,
            caller=caller,
            timeslot_id=body.timeslot_id,
            reason=body.reason,
            record=record,
        ),
        serialize=_appointment_json,
        status_code=201,
    )


@router.get(
    "/me/",
    response_model=Page[AppointmentRead],
    summary="My appointments",
    responses=problem_responses(401, 403, 422),
)
async def list_my_appointments(
    caller: DoctorOrPatient,
    reads: AppReads,
    request: Request,
    pagination: Pagination,
    status: StatusFilter = None,
    day: DayFilter = None,
) -> dict:
    """A patient's own appointments, or a doctor's (as the doctor); newest first, by start time on a day."""
    return await _page(request, reads, pagination, caller, AppointmentFilters(statuses=_one(status), day=day))


@router.get(
    "/",
    response_model=Page[AppointmentRead],
    summary="All appointments (admin)",
    responses=problem_responses(401, 403, 422),
)
async def list_appointments(
    _: Admin,
    reads: AppReads,
    request: Request,
    pagination: Pagination,
    doctor: UserFilter = None,
    patient: UserFilter = None,
    status: StatusFilter = None,
    day: DayFilter = None,
) -> dict:
    """Every appointment, filtered by doctor, patient, status and day."""
    filters = AppointmentFilters(statuses=_one(status), day=day, doctor_id=doctor, patient_id=patient)
    return await _page(request, reads, pagination, None, filters)


@router.get(
    BY_ID,
    response_model=AppointmentRead,
    summary="One appointment",
    responses=problem_responses(401, 404, 422),
)
def get_appointment(appointment_id: AppointmentId, caller: AnyRole, session: DbSession) -> AppointmentView:
    """An appointment, for its patient, its doctor or an admin (404 for anyone else)."""
    return queries.get_appointment(session, appointment_id, caller)


@router.patch(
    BY_ID + "status/",
    response_model=AppointmentRead,
    summary="Change an appointment's status",
    responses=problem_responses(401, 403, 404, 409, 422),
)
def change_appointment_status(
    appointment_id: AppointmentId,
    body: Annotated[StatusChange, Body(openapi_examples=STATUS_EXAMPLES)],
    caller: DoctorOrAdmin,
    session: DbSession,
) -> AppointmentView:
    """Confirm, complete, mark as no-show or cancel (its doctor or an admin).

    `pending` → `confirmed` | `cancelled`; `confirmed` → `completed` | `no_show` | `cancelled`;
    `completed` and `no_show` only once the appointment has started. Anything else is 409.
    Cancelling frees the timeslot for booking again."""
    return services.change_status(
        session, appointment_id, caller, status=body.status, cancellation_reason=body.cancellation_reason
    )


@router.delete(
    BY_ID,
    status_code=204,
    response_class=Response,
    summary="Cancel an appointment",
    responses=problem_responses(401, 403, 404, 409, 422),
)
def cancel_appointment(appointment_id: AppointmentId, caller: PatientOrAdmin, session: DbSession) -> Response:
    """Cancel a pending or confirmed appointment that has not started; the record stays, `cancelled`."""
    services.cancel_appointment(session, appointment_id, caller)
    return Response(status_code=204)


@router.post(
    BY_ID + "reschedule/",
    response_model=AppointmentRead,
    summary="Move an appointment to another timeslot",
    responses=problem_responses(401, 403, 404, 409, 422, 503),
)
async def reschedule_appointment(
    request: Request,
    appointment_id: AppointmentId,
    body: Annotated[RescheduleRequest, Body(openapi_examples=RESCHEDULE_EXAMPLES)],
    caller: PatientOrAdmin,
    db: AppDatabase,
    scheduling: Annotated[SchedulingClient, Depends(scheduling_client)],
    idempotency_key: IdempotencyKeyHeader = None,
) -> AppointmentView:
    """Move a pending or confirmed appointment that has not started to another timeslot of the
    same doctor (its patient or an admin), keeping its id and status.

    Atomic: on success the new timeslot is the patient's and the old one is free again; on any
    failure nothing changes. The new timeslot taken → 409, missing → 404, started, another
    doctor's or outside the doctor's booking policy → 422. A patient moves an appointment only
    until the doctor's cancellation notice before its start (409). A timeslot the waitlist
    offers to the appointment's patient is theirs to move into: the move accepts the offer."""
    return await run_idempotently(
        request,
        idempotency_key,
        caller.id,
        db,
        lambda record: services.reschedule_appointment(
            db, scheduling, appointment_id, caller, timeslot_id=body.timeslot_id, record=record
        ),
        serialize=_appointment_json,
        status_code=200,
    )


@router.get(
    BY_ID + "history/",
    response_model=list[HistoryEntryRead],
    summary="An appointment's history",
    responses=problem_responses(401, 404, 422),
)
def appointment_history(appointment_id: AppointmentId, caller: AnyRole, session: DbSession) -> list:
    """Every change of the appointment, oldest first: who (`actor_id`, `actor_role`; `system` for
    a cascade from a deactivated account), when, what (`booked`, `status_changed`, `rescheduled`,
    `cancelled`) and from/to which status and timeslot. For its patient, its doctor or an admin."""
    return queries.appointment_history(session, appointment_id, caller)


@internal_router.get("/reservations/{reservation_id}", response_model=ReservationRead)
def get_reservation(
    reservation_id: uuid.UUID, _caller: FromScheduling, session: DbSession
) -> queries.ReservationView:
    """What became of a reservation: its appointment and status, or 404 when none was stored, and
    then none ever will be (``services.reservations``: the sweeper frees the hold on this answer)."""
    found = services.settle_reservation(session, reservation_id)
    if found is None:
        raise ReservationNotFound(f"No appointment was stored for reservation {reservation_id}.")
    return found
