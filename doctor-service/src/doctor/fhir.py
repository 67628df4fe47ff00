"""doctor-service's FHIR resources (spec/API.md, "FHIR R4"): doctors as ``Practitioner``.

    GET /fhir/Practitioner/{id}        a listed doctor (patients and admins, like /api/doctors/{id}/)
    GET /fhir/Practitioner?name=...    listed doctors whose name, or a word of it, starts with ``name``

The id of a Practitioner is the doctor's id (their user id). Errors are OperationOutcome
resources (chassis.fhir).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request
from fhir.resources.R4B.practitioner import Practitioner

from chassis.auth import Principal, require_role
from chassis.db import DbSession
from chassis.fhir import FhirResponse, SearchPaging, fhir_router, read_id, resource_capability, searchset
from doctor import queries
from doctor.domain import SEARCH_MAX_LENGTH
from doctor.errors import DoctorNotFound
from doctor.models import Doctor

CAPABILITIES = [
    resource_capability(
        "Practitioner",
        search_params={
            "name": ("string", "The doctor's full name, or a word of it, starts with this (any case)."),
        },
    )
]

router = fhir_router(CAPABILITIES)

PatientOrAdmin = Annotated[Principal, Depends(require_role("patient", "admin"))]
PractitionerId = read_id("Practitioner", DoctorNotFound)


def practitioner_of(doctor: Doctor) -> Practitioner:
    """A listed doctor as a Practitioner; the specialty is a qualification (as text)."""
    return Practitioner(
        id=str(doctor.id),
        active=True,
        name=[{"use": "official", "text": doctor.full_name}] if doctor.full_name else None,
        qualification=[{"code": {"text": doctor.specialty}}] if doctor.specialty else None,
    )


@router.get(
    "/Practitioner/{id}",
    response_class=FhirResponse,
    summary="A doctor as a FHIR Practitioner",
    description="Patients and admins. A deactivated doctor, a user who is not a doctor, or an id that is "
    "not one of ours (`abc`, `0`, `007`) is 404.",
)
def read_practitioner(doctor_id: PractitionerId, _: PatientOrAdmin, session: DbSession) -> FhirResponse:
    with session.begin():
        return FhirResponse(practitioner_of(queries.get_listed_doctor(session, doctor_id)))


@router.get(
    "/Practitioner",
    response_class=FhirResponse,
    summary="Search doctors (FHIR Practitioner)",
    description="Patients and admins. A searchset Bundle of listed doctors, by name; `_count` per page "
    "(at most 100), `_page` from 1.",
)
def search_practitioner(
    request: Request,
    _: PatientOrAdmin,
    session: DbSession,
    paging: SearchPaging,
    name: Annotated[str | None, Query(max_length=SEARCH_MAX_LENGTH)] = None,
) -> FhirResponse:
    with session.begin():
        total, doctors = queries.search_by_name(session, (name or "").strip() or None, paging)
    return FhirResponse(searchset(request, paging, total, [practitioner_of(d) for d in doctors]))
