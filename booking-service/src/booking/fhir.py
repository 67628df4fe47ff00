"""booking-service's FHIR resources (spec/API.md, "FHIR R4"): appointments as ``Appointment``.

    GET  /fhir/Appointment/{id}                       its patient, its doctor, an admin (else 404)
    GET  /fhir/Appointment?patient=Patient/{id}       the caller's visible appointments (a patient's
         /fhir/Appointment?practitioner=Practitioner/{id}   own, a doctor's own, an admin's all),
         /fhir/Appointment?status=booked              filtered; newest first
    POST /fhir/Appointment                            book: ``status: booked``, one ``slot`` and the
                                                      patient as a participant → 201 with Location;
                                                      ``Idempotency-Key`` as on the REST booking

Booking goes through ``services.book_appointment``, the use case of ``POST /api/appointments/``:
the same rules and the same single winner. Errors are OperationOutcome resources (chassis.fhir).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Body, Depends, Query, Request, Response
from fhir.resources.R4B.appointment import Appointment

from booking import queries, services
from booking.domain import REASON_MAX_LENGTH, AppointmentStatus
from booking.errors import AppointmentNotFound
from booking.queries import AppointmentFilters, AppointmentView
from chassis.auth import Principal, require_role
from chassis.db import AppDatabase, AppReads, DbSession
from chassis.errors import ProblemException
from chassis.fhir import (
    FHIR_JSON,
    FhirResponse,
    SearchPaging,
    fhir_base,
    fhir_router,
    invalid_resource,
    parse_resource,
    read_id,
    reference_id,
    resource_capability,
    searchset,
    token_codes,
)
from chassis.idempotency import IdempotencyKeyHeader, run_idempotently

# spec/API.md: pending→pending, confirmed→booked, cancelled→cancelled, completed→fulfilled, no_show→noshow.
FHIR_STATUS_OF = {
    AppointmentStatus.PENDING: "pending",
    AppointmentStatus.CONFIRMED: "booked",
    AppointmentStatus.CANCELLED: "cancelled",
    AppointmentStatus.COMPLETED: "fulfilled",
    AppointmentStatus.NO_SHOW: "noshow",
}
STATUS_OF_FHIR = {fhir: status for status, fhir in FHIR_STATUS_OF.items()}
APPOINTMENT_STATUS_SYSTEM = "http://hl7.org/fhir/appointmentstatus"

CAPABILITIES = [
    resource_capability(
        "Appointment",
        interactions=("read", "search-type", "create"),
        search_params={
            "patient": ("reference", "Patient/<user id>: that patient's appointments."),
            "practitioner": ("reference", "Practitioner/<doctor id>: that doctor's appointments."),
            "status": (
                "token",
                "pending, booked, cancelled, fulfilled or noshow, of http://hl7.org/fhir/appointmentstatus.",
            ),
        },
    )
]

router = fhir_router(CAPABILITIES)

AnyRole = Annotated[Principal, Depends(require_role("admin", "doctor", "patient"))]
Patient = Annotated[Principal, Depends(require_role("patient"))]
AppointmentId = read_id("Appointment", AppointmentNotFound)
Reference = Annotated[str | None, Query(max_length=200)]


def appointment_of(view: AppointmentView) -> Appointment:
    """An appointment as a FHIR Appointment: its slot, its patient and its doctor as participants."""
    status = AppointmentStatus(view.status)
    return Appointment(
        id=str(view.id),
        meta={"lastUpdated": view.updated_at},
        status=FHIR_STATUS_OF[status],
        start=view.start_time,
        end=view.end_time,
        created=view.created_at,
        slot=[{"reference": f"Slot/{view.timeslot_id}"}],
        reasonCode=[{"text": view.reason}] if view.reason else None,
        cancelationReason={"text": view.cancellation_reason} if view.cancellation_reason else None,
        participant=[
            {
                "actor": {"reference": f"Patient/{view.patient_id}", "display": view.patient_name or None},
                "required": "required",
                "status": "accepted",
            },
            {
                "actor": {"reference": f"Practitioner/{view.doctor_id}", "display": view.doctor_name or None},
                "required": "required",
                # A pending appointment waits for the doctor's confirmation.
                "status": "needs-action" if status == AppointmentStatus.PENDING else "accepted",
            },
        ],
    )


@dataclass(frozen=True, slots=True)
class BookingRequest:
    """What a posted Appointment asks for: this slot, for this patient, for this reason."""

    timeslot_id: int
    patient_id: int
    reason: str | None


def booking_request(body: Any) -> BookingRequest:
    """Read a posted Appointment (a 422 says what is missing or wrong)."""
    appointment = parse_resource(Appointment, body)
    if appointment.status != "booked":
        raise invalid_resource("status", 'must be "booked" (a booking request)')
    slots = appointment.slot or []
    if len(slots) != 1 or not slots[0].reference:
        raise invalid_resource("slot", "must reference exactly one Slot (Slot/<id>)")
    timeslot_id = _referenced_id(slots[0].reference, "Slot", "slot")
    patients = {
        _referenced_id(p.actor.reference, "Patient", "participant")
        for p in appointment.participant or []
        if p.actor is not None and p.actor.reference and "Patient/" in p.actor.reference
    }
    if len(patients) != 1:
        raise invalid_resource("participant", "must name exactly one patient (actor Patient/<id>)")
    reason = appointment.reasonCode[0].text if appointment.reasonCode else appointment.description
    if reason is not None and len(reason) > REASON_MAX_LENGTH:
        raise invalid_resource("reasonCode", f"the reason may have at most {REASON_MAX_LENGTH} characters")
    return BookingRequest(timeslot_id=timeslot_id, patient_id=patients.pop(), reason=reason)


def _referenced_id(reference: str, resource_type: str, field: str) -> int:
    try:
        found = reference_id(reference, resource_type, parameter=field)
    except ProblemException:
        found = None
    if found is None:  # no such resource can be referenced here
        raise invalid_resource(field, f"must reference a {resource_type} as {resource_type}/<id>")
    return found


@router.post(
    "/Appointment",
    status_code=201,
    response_class=FhirResponse,
    summary="Book a timeslot (FHIR Appointment)",
    description="Patients only, for themselves: an Appointment with `status: booked`, one `slot` "
    "(Slot/<timeslot id>) and the patient (Patient/<own id>) as a participant. Exactly like "
    "`POST /api/appointments/`: 201 with `Location`, the Appointment `pending` until the doctor "
    "confirms; 404 no such slot, 409 taken, 422 in the past; another patient → 403. With an "
    "`Idempotency-Key`, a retry gets the first answer again (`Idempotent-Replayed: true`, the same "
    "`Location`) and books nothing twice; the key with another body → 422, while the first "
    "request with it runs → 409.",
)
async def create_appointment(
    request: Request,
    body: Annotated[dict[str, Any], Body(media_type="application/fhir+json")],
    caller: Patient,
    db: AppDatabase,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    wanted = booking_request(body)
    if wanted.patient_id != caller.id:
        raise ProblemException(403, "Patients book only for themselves.", code="not_your_booking")
    base = fhir_base(request)
    booked = await run_idempotently(
        request,
        idempotency_key,
        caller.id,
        db,
        lambda record: services.book_appointment(
            db,
            request.app.state.scheduling,
            caller=caller,
            timeslot_id=wanted.timeslot_id,
            reason=wanted.reason,
            record=record,
        ),
        serialize=lambda appointment: appointment_of(appointment).model_dump_json(exclude_none=True),
        status_code=201,
        media_type=FHIR_JSON,
        # A replay answers with the first answer's Location too (the id is in its text).
        headers=lambda text: {"Location": f"{base}/Appointment/{json.loads(text)['id']}"},
    )
    if isinstance(booked, Response):  # with an Idempotency-Key: the recorded answer
        return booked
    location = f"{base}/Appointment/{booked.id}"
    return FhirResponse(appointment_of(booked), status_code=201, headers={"Location": location})


def appointment_statuses(value: str | None) -> frozenset[AppointmentStatus] | None:
    """The statuses a ``status=`` search asks for (``booked``, ``pending,booked``,
    ``http://hl7.org/fhir/appointmentstatus|booked``); None: any (no value, or every status)."""
    if value is None:
        return None
    wanted = token_codes(value, tuple(STATUS_OF_FHIR), system=APPOINTMENT_STATUS_SYSTEM, parameter="status")
    if len(wanted) == len(STATUS_OF_FHIR):
        return None
    return frozenset(STATUS_OF_FHIR[code] for code in wanted)


@router.get(
    "/Appointment/{id}",
    response_class=FhirResponse,
    summary="An appointment as a FHIR Appointment",
    description="Its patient, its doctor or an admin; anyone else gets 404, as does an id that is not "
    "one of ours (`abc`, `0`, `007`).",
)
def read_appointment(appointment_id: AppointmentId, caller: AnyRole, session: DbSession) -> FhirResponse:
    return FhirResponse(appointment_of(queries.get_appointment(session, appointment_id, caller)))


@router.get(
    "/Appointment",
    response_class=FhirResponse,
    summary="Search appointments (FHIR Appointment)",
    description="The caller's visible appointments (a patient's own, a doctor's own, an admin's all), "
    "by patient, practitioner and status; newest first. `_count` per page (at most 100; 0 counts only), "
    "`_page` from 1.",
)
async def search_appointment(
    request: Request,
    caller: AnyRole,
    reads: AppReads,
    paging: SearchPaging,
    patient: Reference = None,
    practitioner: Reference = None,
    status: Annotated[str | None, Query(max_length=200)] = None,
) -> FhirResponse:
    patient_id = reference_id(patient, "Patient", parameter="patient") if patient else None
    doctor_id = reference_id(practitioner, "Practitioner", parameter="practitioner") if practitioner else None
    statuses = appointment_statuses(status)
    filters = AppointmentFilters(statuses=statuses, patient_id=patient_id, doctor_id=doctor_id)
    if (patient and patient_id is None) or (practitioner and doctor_id is None):
        return FhirResponse(searchset(request, paging, 0, []))  # it references none of ours: nothing
    total, views = await queries.list_appointments(
        reads,
        scope=None if caller.role == "admin" else caller,
        filters=filters,
        tz=request.app.state.settings.tz,
        page=paging,
    )
    return FhirResponse(searchset(request, paging, total, [appointment_of(view) for view in views]))
