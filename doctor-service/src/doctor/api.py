"""doctor-service routes: ``/api/doctors/``, ``/api/doctors/{id}/`` and ``/api/doctors/me/``.

``/api/doctors/{id}/timeslots/`` belongs to scheduling-service (the gateway routes it there).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query, Request

from chassis.auth import Principal, require_role
from chassis.db import AppReads, DbSession
from chassis.errors import problem_responses
from chassis.pagination import Page, Pagination, page_of
from doctor import queries, services
from doctor.domain import SEARCH_MAX_LENGTH, SPECIALTY_MAX_LENGTH
from doctor.schemas import DoctorProfileUpdate, DoctorRead

router = APIRouter(prefix="/api/doctors", tags=["doctors"])

PatientOrAdmin = Annotated[Principal, Depends(require_role("patient", "admin"))]
Admin = Annotated[Principal, Depends(require_role("admin"))]
DoctorUser = Annotated[Principal, Depends(require_role("doctor"))]

# "{doctor_id:int}" only matches digits, so "me" never reaches the id routes and
# a non-numeric id is simply not found.
BY_ID = "/{doctor_id:int}/"

# Request examples, offered by Swagger UI's "Try it out" and shown by Redoc.
PROFILE_EXAMPLES = {
    "profile": {
        "summary": "A complete profile",
        "value": {
            "specialty": "Cardiology",
            "bio": "Heart rhythm disorders and preventive cardiology.",
            "years_of_experience": 12,
        },
    },
    "specialty": {"summary": "Only the specialty", "value": {"specialty": "Dermatology"}},
}
ProfileChanges = Annotated[DoctorProfileUpdate, Body(openapi_examples=PROFILE_EXAMPLES)]


@router.get(
    "/",
    response_model=Page[DoctorRead],
    summary="List active doctors",
    description="Patients and admins. Active doctors by name; `search` matches part of the name or "
    "of the specialty (any case), `specialty` the whole specialty (any case). Paginated.",
    responses=problem_responses(401, 403, 422),
)
async def list_doctors(
    request: Request,
    reads: AppReads,
    _: PatientOrAdmin,
    pagination: Pagination,
    search: Annotated[
        str | None,
        Query(
            max_length=SEARCH_MAX_LENGTH,
            description="Part of the name or of the specialty, any case (`cardio` finds Cardiology).",
        ),
    ] = None,
    specialty: Annotated[
        str | None,
        Query(max_length=SPECIALTY_MAX_LENGTH, description="The exact specialty, any case."),
    ] = None,
) -> dict:
    filters = queries.DoctorFilters(search=_blank_to_none(search), specialty=_blank_to_none(specialty))
    count, rows = await queries.list_doctor_rows(reads, filters, pagination)
    return page_of(request, pagination, count, rows)


@router.get(
    "/me/",
    response_model=DoctorRead,
    summary="Read your own doctor profile",
    description="Doctors only. The profile exists from registration on, with an empty specialty "
    "and bio until you fill them in.",
    responses=problem_responses(401, 403, 404),
)
def read_own_profile(session: DbSession, principal: DoctorUser) -> DoctorRead:
    return DoctorRead.model_validate(queries.get_own_profile(session, principal.id))


@router.patch(
    "/me/",
    response_model=DoctorRead,
    summary="Edit your own specialty, bio or years of experience",
    description="Doctors only. Fields left out stay as they are (null is refused); the name follows "
    "the user account (`PATCH /api/auth/me/`).",
    responses=problem_responses(400, 401, 403, 404, 422),
)
def update_own_profile(session: DbSession, principal: DoctorUser, body: ProfileChanges) -> DoctorRead:
    doctor = services.update_own_profile(session, principal.id, body.changes())
    return DoctorRead.model_validate(doctor)


@router.get(
    BY_ID,
    response_model=DoctorRead,
    summary="Read an active doctor",
    description="Patients and admins. A deactivated doctor, or a user who is not a doctor, is 404.",
    responses=problem_responses(401, 403, 404),
)
def read_doctor(session: DbSession, _: PatientOrAdmin, doctor_id: int) -> DoctorRead:
    return DoctorRead.model_validate(queries.get_listed_doctor(session, doctor_id))


@router.patch(
    BY_ID,
    response_model=DoctorRead,
    summary="Edit a doctor's specialty, bio or years of experience (admin)",
    description="Admins only. The same fields as a doctor's own edit; fields left out stay as they are.",
    responses=problem_responses(400, 401, 403, 404, 422),
)
def update_doctor(session: DbSession, _: Admin, doctor_id: int, body: ProfileChanges) -> DoctorRead:
    doctor = services.update_doctor_profile(session, doctor_id, body.changes())
    return DoctorRead.model_validate(doctor)


def _blank_to_none(value: str | None) -> str | None:
    # "?search=" and "?search=%20" mean no filter.
    if value is None:
        return None
    return value.strip() or None
