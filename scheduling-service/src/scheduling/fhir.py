"""scheduling-service's FHIR resources (spec/API.md, "FHIR R4"): ``Schedule`` and ``Slot``.

    GET /fhir/Schedule/{id}                      a doctor's schedule (id = the doctor's id)
    GET /fhir/Schedule?actor=Practitioner/{id}   the same, found by its doctor
    GET /fhir/Slot?schedule=Schedule/{id}        its timeslots, earliest first; ``start=ge…``,
                                                 ``start=lt…`` (also gt, le, eq) and ``status=free|busy``;
                                                 none (an empty Bundle) for a doctor who is not listed
    GET /fhir/Slot/{id}                          one timeslot

A Slot is ``free`` exactly when the REST API lists its timeslot as free (``queries.is_free``:
available, in the future, bookable now under the doctor's policy); every other one is ``busy``.
Patients and admins see the schedule of any listed doctor (a busy Slot says nothing about who
holds it); a doctor sees only their own (another's is 403, as on ``/api/doctors/{id}/timeslots/``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Query, Request
from fhir.resources.R4B.schedule import Schedule
from fhir.resources.R4B.slot import Slot
from sqlalchemy.orm import Session

from chassis.auth import Principal, require_role
from chassis.db import AppDatabase
from chassis.errors import ProblemException
from chassis.fhir import (
    FhirResponse,
    SearchPaging,
    date_bound,
    fhir_router,
    invalid_search,
    read_id,
    reference_id,
    resource_capability,
    searchset,
    token_codes,
)
from chassis.timezones import utcnow
from scheduling import queries
from scheduling.errors import DoctorNotFound, TimeslotNotFound

CAPABILITIES = [
    resource_capability(
        "Schedule",
        search_params={"actor": ("reference", "Required: Practitioner/<doctor id>, whose schedule it is.")},
    ),
    resource_capability(
        "Slot",
        search_params={
            "schedule": ("reference", "Required: Schedule/<doctor id>."),
            "start": (
                "date",
                "ge, gt, le, lt or eq a year, a month or a day (clinic time zone) or a date-time; "
                "repeatable.",
            ),
            "status": (
                "token",
                "free (bookable now, as listed by the REST API) or busy (anything else), of "
                "http://hl7.org/fhir/slotstatus; free,busy for either.",
            ),
        },
    ),
]
SLOT_STATUSES = ("free", "busy")
SLOT_STATUS_SYSTEM = "http://hl7.org/fhir/slotstatus"
MAX_START_VALUES = 4

router = fhir_router(CAPABILITIES)

Reader = Annotated[Principal, Depends(require_role("patient", "admin", "doctor"))]
ScheduleId = read_id("Schedule", DoctorNotFound)
SlotId = read_id("Slot", TimeslotNotFound)


def schedule_of(doctor_id: int) -> Schedule:
    """A doctor's schedule: one per doctor, with the doctor's id."""
    return Schedule(
        id=str(doctor_id),
        active=True,
        actor=[{"reference": f"Practitioner/{doctor_id}"}],
        comment="The doctor's timeslots; search them as Slot?schedule=Schedule/" + str(doctor_id),
    )


def slot_of(row: Any) -> Slot:
    """A timeslot row (``queries.SLOT_COLUMNS`` and ``is_free``) as a Slot."""
    return Slot(
        id=str(row.id),
        schedule={"reference": f"Schedule/{row.doctor_id}"},
        status="free" if row.is_free else "busy",
        start=row.start_time,
        end=row.end_time,
    )


def _is_visible(session: Session, caller: Principal, doctor_id: int) -> bool:
    """Whether there is a schedule ``doctor_id`` (a listed doctor's) to show the caller: patients
    and admins see any, a doctor only their own (another's is 403)."""
    if caller.role == "doctor" and caller.id != doctor_id:
        raise ProblemException(403, "Doctors see only their own schedule.", code="forbidden")
    return queries.doctor_is_listed(session, doctor_id)


@router.get(
    "/Schedule/{id}",
    response_class=FhirResponse,
    summary="A doctor's schedule as a FHIR Schedule",
    description="Patients and admins (any listed doctor), doctors (their own). The id is the doctor's.",
)
def read_schedule(doctor_id: ScheduleId, caller: Reader, db: AppDatabase) -> FhirResponse:
    with db.transaction() as session:
        listed = _is_visible(session, caller, doctor_id)
    if not listed:
        raise DoctorNotFound(f"There is no schedule {doctor_id}.")
    return FhirResponse(schedule_of(doctor_id))


@router.get(
    "/Schedule",
    response_class=FhirResponse,
    summary="Find a doctor's schedule (FHIR Schedule)",
    description="`actor=Practitioner/<doctor id>`: a searchset Bundle of that doctor's schedule, or none.",
)
def search_schedule(
    request: Request,
    caller: Reader,
    db: AppDatabase,
    paging: SearchPaging,
    actor: Annotated[str | None, Query(max_length=200, description="Practitioner/<doctor id>")] = None,
) -> FhirResponse:
    if actor is None:
        raise invalid_search("actor is required: Schedule?actor=Practitioner/<doctor id>.")
    doctor_id = reference_id(actor, "Practitioner", parameter="actor")
    with db.transaction() as session:
        # A search finds nothing (no 404), for an id that cannot be ours too.
        total = 1 if doctor_id is not None and _is_visible(session, caller, doctor_id) else 0
    found = [schedule_of(doctor_id)] if total and paging.offset == 0 else []
    return FhirResponse(searchset(request, paging, total, found))


@router.get(
    "/Slot/{id}",
    response_class=FhirResponse,
    summary="A timeslot as a FHIR Slot",
    description="Patients and admins (of any listed doctor), doctors (their own); else 404.",
)
def read_slot(timeslot_id: SlotId, caller: Reader, db: AppDatabase) -> FhirResponse:
    with db.transaction() as session:
        row = queries.get_listed_timeslot(session, timeslot_id, utcnow())
    if row is None or (caller.role == "doctor" and row.doctor_id != caller.id):
        raise TimeslotNotFound(f"There is no slot {timeslot_id}.")
    return FhirResponse(slot_of(row))


def slot_status(value: str | None) -> bool | None:
    """``status=free`` (True), ``busy`` (False), or both (comma-separated: either): None means any.
    Each may name its system too (``http://hl7.org/fhir/slotstatus|free``)."""
    if value is None:
        return None
    wanted = token_codes(value, SLOT_STATUSES, system=SLOT_STATUS_SYSTEM, parameter="status")
    return wanted.pop() == "free" if len(wanted) == 1 else None


@router.get(
    "/Slot",
    response_class=FhirResponse,
    summary="Search a doctor's timeslots (FHIR Slot)",
    description="A searchset Bundle of one schedule's Slots, earliest first; `_count` per page "
    "(at most 100; 0 counts only), `_page` from 1. Patients and admins (any listed doctor), doctors "
    "(their own); a doctor who is not listed has none.",
)
def search_slot(
    request: Request,
    caller: Reader,
    db: AppDatabase,
    paging: SearchPaging,
    schedule: Annotated[str | None, Query(max_length=200, description="Schedule/<doctor id>")] = None,
    start: Annotated[list[str] | None, Query(max_length=64, description="e.g. ge2030-03-04")] = None,
    status: Annotated[str | None, Query(max_length=100, description="free or busy")] = None,
) -> FhirResponse:
    if schedule is None:
        raise invalid_search("schedule is required: Slot?schedule=Schedule/<doctor id>.")
    doctor_id = reference_id(schedule, "Schedule", parameter="schedule")
    if len(start or ()) > MAX_START_VALUES:
        raise invalid_search(f"start may be given at most {MAX_START_VALUES} times.")
    tz = request.app.state.settings.tz
    starts = [date_bound(value, tz, parameter="start") for value in start or ()]
    free = slot_status(status)
    if doctor_id is None:  # a schedule that cannot be one of ours has no slots
        return FhirResponse(searchset(request, paging, 0, []))
    with db.transaction() as session:
        if not _is_visible(session, caller, doctor_id):
            return FhirResponse(searchset(request, paging, 0, []))  # a search finds nothing: no 404
        total, rows = queries.search_schedule(
            session, doctor_id, paging, now=utcnow(), free=free, starts=starts
        )
    return FhirResponse(searchset(request, paging, total, [slot_of(row) for row in rows]))
