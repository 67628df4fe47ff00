"""The parts of a doctor's booking policy that booking applies (spec/API.md, "Booking policy").

- ``max_active_per_patient``: a patient with that many active appointments with the doctor
  that have not started cannot book another with them (409).
- ``cancellation_notice_minutes``: a patient cancels (or moves) an appointment only until
  that long before its start (409); doctors and admins are not bound by it.

The policy lives in doctor-service; booking keeps what it needs in ``doctor_policies``, fed by
``doctor.profile.updated`` (newer revisions only). Minimum notice and horizon are
scheduling's: its hold judges start times.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from booking.domain import ACTIVE_STATUSES
from booking.errors import CancellationTooLate, TooManyActiveAppointments
from booking.models import Appointment, DoctorPolicy

_POLICIES = DoctorPolicy.__table__
_APPOINTMENTS = Appointment.__table__

_LIMIT = select(_POLICIES.c.max_active_per_patient).where(_POLICIES.c.doctor_id == bindparam("doctor_id"))
# Serialises one patient's bookings while a limit is checked, so two at once cannot both pass.
_LOCK_PATIENT = select(func.pg_advisory_xact_lock(bindparam("patient_id")))
_ACTIVE_WITH_DOCTOR = (
    select(func.count())
    .select_from(_APPOINTMENTS)
    .where(
        _APPOINTMENTS.c.patient_id == bindparam("patient_id"),
        _APPOINTMENTS.c.doctor_id == bindparam("doctor_id"),
        _APPOINTMENTS.c.status.in_([status.value for status in ACTIVE_STATUSES]),
        _APPOINTMENTS.c.start_time > func.now(),
    )
)


def check_active_limit(connection: Any, *, patient_id: int, doctor_id: int) -> None:
    """Refuse a new booking beyond the doctor's per-patient limit, in the booking's transaction."""
    ids = {"patient_id": patient_id, "doctor_id": doctor_id}
    limit = connection.execute(_LIMIT, ids).scalar()
    if limit is None:
        return
    connection.execute(_LOCK_PATIENT, ids)
    if connection.execute(_ACTIVE_WITH_DOCTOR, ids).scalar_one() >= limit:
        raise TooManyActiveAppointments(
            f"You already have {limit} upcoming appointment(s) with this doctor, the most they allow.",
            max_active_per_patient=limit,
        )


def check_cancellation_notice(session: Session, appointment: Appointment, now: datetime) -> None:
    """Refuse a patient's cancellation (or move) later than the doctor's cancellation notice."""
    notice = session.scalar(
        select(DoctorPolicy.cancellation_notice_minutes).where(
            DoctorPolicy.doctor_id == appointment.doctor_id
        )
    )
    if notice and now > appointment.start_time - timedelta(minutes=notice):
        raise CancellationTooLate(
            f"This appointment can be cancelled or moved only until {notice} minutes before it starts; "
            "please contact the clinic.",
            cancellation_notice_minutes=notice,
        )


def remember_policy(session: Session, doctor_id: int, policy: dict[str, Any], *, revision: int) -> None:
    """Apply a ``doctor.profile.updated`` event's policy, unless a newer revision is known."""
    values = {
        "cancellation_notice_minutes": int(policy.get("cancellation_notice_minutes") or 0),
        "max_active_per_patient": policy.get("max_active_per_patient"),
        "revision": revision,
    }
    upsert = insert(DoctorPolicy).values(doctor_id=doctor_id, **values)
    session.execute(
        upsert.on_conflict_do_update(
            index_elements=[DoctorPolicy.doctor_id],
            set_=values,
            where=DoctorPolicy.revision < upsert.excluded.revision,
        )
    )
