"""Status changes of an appointment (its doctor or an admin) and cancellations (its patient or an
admin; the system on a deactivation). Each locks the appointment's row so two concurrent changes
cannot both apply; one ORM transaction each."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from booking import events
from booking.adapters import metrics
from booking.domain import AppointmentStatus, CancelledBy, check_cancellation, check_status_change, may_see
from booking.models import Appointment
from booking.queries import AppointmentView, not_found, view_of
from booking.services import history, policy
from booking.services.history import Action
from chassis.auth import Principal
from chassis.timezones import utcnow


def change_status(
    session: Session,
    appointment_id: int,
    caller: Principal,
    *,
    status: AppointmentStatus,
    cancellation_reason: str | None,
) -> AppointmentView:
    """Move an appointment along the status machine (its doctor or an admin)."""
    with session.begin():
        appointment = locked(session, appointment_id, caller)
        previous = AppointmentStatus(appointment.status)
        now = utcnow()
        check_status_change(previous, status, start_time=appointment.start_time, now=now)
        if status == AppointmentStatus.CANCELLED:
            cancel(session, appointment, caller, cancellation_reason, now)
        else:
            appointment.status = status
            appointment.updated_at = now
            events.publish_status_changed(session, appointment, previous)
            entry = {"from_status": previous, "to_status": status}
            history.record(session, appointment.id, actor=caller, action=Action.STATUS_CHANGED, **entry)
        session.flush()
        return view_of(session, appointment_id)


def cancel_appointment(session: Session, appointment_id: int, caller: Principal) -> None:
    """Cancel an active appointment that has not started (its patient or an admin); the record stays."""
    with session.begin():
        appointment = locked(session, appointment_id, caller)
        now = utcnow()
        check_cancellation(AppointmentStatus(appointment.status), start_time=appointment.start_time, now=now)
        if caller.role == "patient":
            policy.check_cancellation_notice(appointment, now)
        cancel(session, appointment, caller, None, now)


def locked(session: Session, appointment_id: int, caller: Principal) -> Appointment:
    appointment = session.scalar(
        select(Appointment).where(Appointment.id == appointment_id).with_for_update()
    )
    if appointment is None or not may_see(
        caller.role, caller.id, patient_id=appointment.patient_id, doctor_id=appointment.doctor_id
    ):
        raise not_found(appointment_id)
    return appointment


def cancel(
    session: Session, appointment: Appointment, actor: Principal | None, reason: str | None, now: datetime
) -> None:
    """Cancel, with its event and history entry; ``actor`` None: the system (a deactivated account)."""
    by = CancelledBy.SYSTEM if actor is None else CancelledBy(actor.role)
    previous = AppointmentStatus(appointment.status)
    appointment.status = AppointmentStatus.CANCELLED
    appointment.cancelled_by = by
    appointment.cancellation_reason = reason
    appointment.updated_at = now
    events.publish_cancelled(session, appointment, previous, by)
    history.record(
        session,
        appointment.id,
        actor=actor,
        action=Action.CANCELLED,
        from_status=previous,
        to_status=AppointmentStatus.CANCELLED,
        reason=reason,
    )
    metrics.CANCELLATIONS.labels(by.value).inc()
