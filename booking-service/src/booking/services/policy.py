"""The parts of a doctor's booking policy that booking applies (spec/API.md, "Booking policy").

- ``max_active_per_patient``: a patient with that many active appointments with the doctor
  that have not started cannot book another with them (409).
- ``cancellation_notice_minutes``: a patient cancels (or moves) an appointment only until
  that long before its start (409); doctors and admins are not bound by it.

The policy lives in doctor-service; booking keeps what it needs in ``doctor_policies``, fed by
``doctor.profile.updated`` (newer revisions only). Minimum notice and horizon are
scheduling's: its hold judges start times.

A policy change applies to bookings made after it, never to existing appointments: each
appointment keeps the cancellation notice in force when it was booked
(``appointments.cancellation_notice_minutes``, read with the limit in the booking's one read of
the policy); a reschedule keeps it (a move is not a new booking).
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

_POLICY = select(_POLICIES.c.max_active_per_patient, _POLICIES.c.cancellation_notice_minutes).where(
    _POLICIES.c.doctor_id == bindparam("doctor_id")
)
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


def check_booking(connection: Any, *, patient_id: int, doctor_id: int) -> int:
    """Refuse a new booking beyond the doctor's per-patient limit, in the booking's transaction;
    return the cancellation notice the new appointment keeps (0 for a doctor without a policy).

    One read of the policy for both, so the hot path gains no round trip."""
    ids = {"patient_id": patient_id, "doctor_id": doctor_id}
    policy = connection.execute(_POLICY, ids).first()
    if policy is None:
        return 0
    limit, notice = policy
    if limit is not None:
        connection.execute(_LOCK_PATIENT, ids)
        if connection.execute(_ACTIVE_WITH_DOCTOR, ids).scalar_one() >= limit:
            raise TooManyActiveAppointments(
                f"You already have {limit} upcoming appointment(s) with this doctor, the most they allow.",
                max_active_per_patient=limit,
            )
    return notice


def check_cancellation_notice(appointment: Appointment, now: datetime) -> None:
    """Refuse a patient's cancellation (or move) later than the cancellation notice the appointment
    was booked under (a later change of the doctor's policy does not reach it)."""
    notice = appointment.cancellation_notice_minutes
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
