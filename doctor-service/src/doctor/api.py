"""doctor-service routes: ``/api/doctors/``, ``/api/doctors/{id}/`` and ``/api/doctors/me/``.

``/api/doctors/{id}/timeslots/`` belongs to scheduling-service (the gateway routes it there).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query, Request, Response

from chassis.auth import Principal, require_role
from chassis.db import AppReads, DbSession
from chassis.errors import problem_responses
from chassis.pagination import Page, Pagination, page_response
from doctor import queries, services
from doctor.domain import SEARCH_MAX_LENGTH, SPECIALTY_MAX_LENGTH
from doctor.schemas import BookingPolicy, BookingPolicyUpdate, DoctorProfileUpdate, DoctorRead

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
POLICY_EXAMPLES = {
    "rules": {
        "summary": "An hour's notice, a month ahead, a day to cancel, two upcoming visits a patient",
        "value": {
            "min_notice_minutes": 60,
            "booking_horizon_days": 30,
            "cancellation_notice_minutes": 1440,
            "max_active_per_patient": 2,
        },
    },
    "cancellation": {
        "summary": "Only the cancellation notice: two hours",
        "value": {"cancellation_notice_minutes": 120},
    },
}
PolicyChanges = Annotated[BookingPolicyUpdate, Body(openapi_examples=POLICY_EXAMPLES)]
POLICY_RULES = (
    "Bookings (and reschedules) must start at least `min_notice_minutes` and at most "
    "`booking_horizon_days` days ahead (422); a patient cancels or reschedules only until "
    "`cancellation_notice_minutes` before the start (409) and holds at most `max_active_per_patient` "
    "upcoming appointments with the doctor (409). Null lifts a limit. A change applies to bookings "
    "made after it (within a second), never to existing appointments."
)


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
) -> Response:
    filters = queries.DoctorFilters(search=_blank_to_none(search), specialty=_blank_to_none(specialty))
    count, rows = await queries.list_doctor_rows(reads, filters, pagination)
    # The hot read of make bench's row 3: the rows already have DoctorRead's shape.
    return page_response(request, pagination, count, rows)


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


@router.get(
    "/me/booking-policy/",
    response_model=BookingPolicy,
    summary="Read your booking policy",
    description="Doctors only. " + POLICY_RULES,
    responses=problem_responses(401, 403, 404),
)
def read_own_policy(session: DbSession, principal: DoctorUser) -> BookingPolicy:
    return BookingPolicy.model_validate(queries.get_own_profile(session, principal.id))


@router.patch(
    "/me/booking-policy/",
    response_model=BookingPolicy,
    summary="Change your booking policy",
    description="Doctors only. Fields left out stay as they are. " + POLICY_RULES,
    responses=problem_responses(400, 401, 403, 404, 422),
)
def change_own_policy(session: DbSession, principal: DoctorUser, body: PolicyChanges) -> BookingPolicy:
    return BookingPolicy.model_validate(services.update_own_profile(session, principal.id, body.changes()))


@router.get(
    BY_ID + "booking-policy/",
    response_model=BookingPolicy,
    summary="Read a doctor's booking policy (admin)",
    description="Admins only. " + POLICY_RULES,
    responses=problem_responses(401, 403, 404),
)
def read_doctors_policy(session: DbSession, _: Admin, doctor_id: int) -> BookingPolicy:
    return BookingPolicy.model_validate(queries.get_listed_doctor(session, doctor_id))


@router.patch(
    BY_ID + "booking-policy/",
    response_model=BookingPolicy,
    summary="Change a doctor's booking policy (admin)",
    description="Admins only. Fields left out stay as they are. " + POLICY_RULES,
    responses=problem_responses(400, 401, 403, 404, 422),
)
def change_doctors_policy(session: DbSession, _: Admin, doctor_id: int, body: PolicyChanges) -> BookingPolicy:
    return BookingPolicy.model_validate(services.update_doctor_profile(session, doctor_id, body.changes()))


def _blank_to_none(value: str | None) -> str | None:
    # "?search=" and "?search=%20" mean no filter.
    if value is None:
        return None
    return value.strip() or None
