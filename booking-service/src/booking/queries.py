"""The read side of booking: appointments as clients see them, with current names.

Names come from the local read model of users and are joined at read time, so a
rename shows at once on old appointments; a name not known yet is empty.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session, aliased

from booking.domain import AppointmentStatus
from booking.models import Appointment, User
from chassis.auth import Principal
from chassis.timezones import day_bounds


@dataclass(frozen=True, slots=True)
class AppointmentView:
    """An appointment with its doctor's and patient's current names."""

    id: int
    timeslot_id: int
    doctor_id: int
    patient_id: int
    doctor_name: str
    patient_name: str
    start_time: datetime
    end_time: datetime
    status: str
    reason: str
    cancellation_reason: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class AppointmentFilters:
    status: AppointmentStatus | None = None
    day: date | None = None
    doctor_id: int | None = None
    patient_id: int | None = None


def list_appointments(
    session: Session,
    *,
    scope: Principal | None,
    filters: AppointmentFilters,
    tz: ZoneInfo,
    offset: int,
    limit: int,
) -> tuple[int, list[AppointmentView]]:
    """A page of appointments and the total count.

    ``scope`` limits the list to a doctor's or a patient's own; ``None`` is the admin's view
    of everything. Newest first, or by start time when filtered by day.
    """
    query = with_names(select(Appointment))
    conditions = []
    if scope is not None:
        column = Appointment.doctor_id if scope.role == "doctor" else Appointment.patient_id
        conditions.append(column == scope.id)
    if filters.status is not None:
        conditions.append(Appointment.status == filters.status)
    if filters.doctor_id is not None:
        conditions.append(Appointment.doctor_id == filters.doctor_id)
    if filters.patient_id is not None:
        conditions.append(Appointment.patient_id == filters.patient_id)
    if filters.day is not None:
        start, end = day_bounds(filters.day, tz)
        conditions.extend([Appointment.start_time >= start, Appointment.start_time < end])
    query = query.where(*conditions)
    if filters.day is not None:
        query = query.order_by(Appointment.start_time.asc(), Appointment.id.asc())
    else:
        query = query.order_by(Appointment.created_at.desc(), Appointment.id.desc())
    with session.begin():
        count = session.scalar(select(func.count()).select_from(Appointment).where(*conditions)) or 0
        rows = session.execute(query.offset(offset).limit(limit)).all()
        return count, [view(*row) for row in rows]


_doctor = aliased(User, name="doctor")
_patient = aliased(User, name="patient")


def with_names(query: Select) -> Select:
    # Names are joined at read time, so a rename shows at once on old appointments.
    return (
        query.add_columns(_doctor.full_name, _patient.full_name)
        .outerjoin(_doctor, _doctor.id == Appointment.doctor_id)
        .outerjoin(_patient, _patient.id == Appointment.patient_id)
    )


def view_of(session: Session, appointment_id: int) -> AppointmentView:
    row = session.execute(with_names(select(Appointment)).where(Appointment.id == appointment_id)).one()
    return view(*row)


def view(appointment: Appointment, doctor_name: str | None, patient_name: str | None) -> AppointmentView:
    return AppointmentView(
        id=appointment.id,
        timeslot_id=appointment.timeslot_id,
        doctor_id=appointment.doctor_id,
        patient_id=appointment.patient_id,
        doctor_name=doctor_name or "",
        patient_name=patient_name or "",
        start_time=appointment.start_time,
        end_time=appointment.end_time,
        status=appointment.status,
        reason=appointment.reason,
        cancellation_reason=appointment.cancellation_reason,
        created_at=appointment.created_at,
        updated_at=appointment.updated_at,
    )
