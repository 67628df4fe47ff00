"""Handlers of scheduling's timeslot events: a timeslot became bookable (thin: see ``offers``)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from booking.waitlist import offers
from booking.waitlist.events import TIMESLOT_CREATED, TIMESLOT_RELEASED
from chassis.messaging import Envelope, Handler


def _bookable(session: Session, data: dict[str, Any]) -> None:
    offers.note_bookable(
        session,
        timeslot_id=int(data["timeslot_id"]),
        doctor_id=int(data["doctor_id"]),
        start_time=datetime.fromisoformat(data["start_time"]),
        end_time=datetime.fromisoformat(data["end_time"]),
    )


def on_timeslot_created(session: Session, envelope: Envelope) -> None:
    _bookable(session, envelope.data)


def on_timeslot_released(session: Session, envelope: Envelope) -> None:
    # A released offer hold ends that offer (scheduling's sweeper freed it, booking did not).
    offers.forget_released_hold(session, uuid.UUID(str(envelope.data["reservation_id"])))
    _bookable(session, envelope.data)


HANDLERS: dict[str, Handler] = {
    TIMESLOT_CREATED: on_timeslot_created,
    TIMESLOT_RELEASED: on_timeslot_released,
}
