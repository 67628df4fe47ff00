"""booking's read model of users (names shown on appointments), kept in step with identity's
events (``events`` hands them here), and the cancellations a deactivation brings."""

from __future__ import annotations

from sqlalchemy import case, func, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from booking.domain import ACTIVE_STATUSES, deactivation_reason
from booking.models import Appointment, User
from booking.services.status import cancel
from chassis.timezones import utcnow


def remember_user(
    session: Session,
    user_id: int,
    *,
    revision: int,
    role: str,
    is_active: bool,
    full_name: str | None = None,
) -> bool:
    """Apply an identity event to the read model of users, in the caller's transaction.

    Out-of-order tolerant: an event older than what is known changes nothing,
    except that it fills in a name still unknown (``deactivated`` carries none).
    Returns whether the event is the newest known about the user, read after the upsert: it
    locks the user's row (even when it changes nothing) or waits for a concurrent event's insert
    of it, so a newer event another replica applied meanwhile is seen.
    """
    insert = pg_insert(User).values(
        id=user_id, full_name=full_name or "", role=role, is_active=is_active, revision=revision
    )
    newer = User.revision < insert.excluded.revision
    name_unknown = User.full_name == ""
    updates = {
        "role": case((newer, insert.excluded.role), else_=User.role),
        "is_active": case((newer, insert.excluded.is_active), else_=User.is_active),
        "revision": func.greatest(User.revision, insert.excluded.revision),
        "updated_at": func.now(),
    }
    if full_name:
        updates["full_name"] = case(
            (or_(newer, name_unknown), insert.excluded.full_name), else_=User.full_name
        )
    session.execute(
        insert.on_conflict_do_update(index_elements=[User.id], set_=updates, where=or_(newer, name_unknown))
    )
    return session.scalar(select(User.revision).where(User.id == user_id)) == revision


def cancel_appointments_of_deactivated_user(session: Session, user_id: int) -> int:
    """Cancel the user's future active appointments, as patient or doctor; in the caller's transaction."""
    now = utcnow()
    appointments = session.scalars(
        select(Appointment)
        .where(
            or_(Appointment.patient_id == user_id, Appointment.doctor_id == user_id),
            Appointment.status.in_(ACTIVE_STATUSES),
            Appointment.start_time > now,
        )
        .order_by(Appointment.id)
        .with_for_update()
    ).all()
    for appointment in appointments:
        reason = deactivation_reason(as_patient=appointment.patient_id == user_id)
        cancel(session, appointment, None, reason, now)
    return len(appointments)
