"""The waitlist's use cases for patients: join, list, leave; one transaction each."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from booking.adapters.scheduling_client import SchedulingClient
from booking.domain import EndReason, OfferState, check_range
from booking.errors import AlreadyWaiting, DoctorNotFound, WaitlistEntryNotFound
from booking.models import ONE_ENTRY_PER_RANGE_INDEX, User, WaitlistEntry, WaitlistOffer
from chassis.auth import Principal
from chassis.db import Database
from chassis.pagination import PageParams
from chassis.timezones import day_bounds, utcnow


@dataclass(frozen=True, slots=True)
class EntryView:
    """An entry as the API shows it; ``offer`` is the open offer's facts, if any."""

    id: int
    doctor_id: int
    date_from: date
    date_to: date
    created_at: datetime
    offer: dict[str, Any] | None


def join_waitlist(
    db: Database, *, patient_id: int, doctor_id: int, date_from: date, date_to: date, tz: ZoneInfo
) -> EntryView:
    """Put the patient in line for the doctor's timeslots starting on the days of the range."""
    now = utcnow()
    check_range(date_from, date_to, today=now.astimezone(tz).date())
    try:
        with db.transaction() as session:
            doctor = session.get(User, doctor_id)
            if doctor is None or doctor.role != "doctor" or not doctor.is_active:
                raise DoctorNotFound(f"There is no doctor {doctor_id}.")
            entry = WaitlistEntry(
                patient_id=patient_id,
                doctor_id=doctor_id,
                date_from=date_from,
                date_to=date_to,
                range_start=day_bounds(date_from, tz)[0],
                range_end=day_bounds(date_to, tz)[1],
            )
            session.add(entry)
            session.flush()
            return view_of(entry, None)
    except IntegrityError as exc:
        if ONE_ENTRY_PER_RANGE_INDEX in str(exc.orig):
            raise AlreadyWaiting("You already wait for this doctor over exactly these days.") from exc
        raise


def list_own_entries(db: Database, patient_id: int, page: PageParams) -> tuple[int, list[EntryView]]:
    """One page of the patient's waiting entries (oldest first) and how many there are; an entry
    whose days are all past has nothing left to wait for and is not listed."""
    waiting = (
        WaitlistEntry.patient_id == patient_id,
        WaitlistEntry.ended_at.is_(None),
        WaitlistEntry.range_end > utcnow(),
    )
    with db.transaction() as session:
        count = session.scalar(select(func.count()).select_from(WaitlistEntry).where(*waiting)) or 0
        rows = session.execute(
            select(WaitlistEntry, WaitlistOffer)
            .outerjoin(
                WaitlistOffer,
                (WaitlistOffer.entry_id == WaitlistEntry.id) & (WaitlistOffer.state == OfferState.OPEN),
            )
            .where(*waiting)
            .order_by(WaitlistEntry.created_at, WaitlistEntry.id)
            .offset(page.offset)
            .limit(page.limit)
        ).all()
        return count, [view_of(entry, offer) for entry, offer in rows]


def leave_waitlist(db: Database, scheduling: SchedulingClient, entry_id: int, caller: Principal) -> None:
    """End an entry (its patient or an admin); an open offer is withdrawn and its hold released."""
    now = utcnow()
    with db.transaction() as session:
        entry = session.scalar(select(WaitlistEntry).where(WaitlistEntry.id == entry_id).with_for_update())
        if entry is None or entry.ended_at is not None or not _may_manage(caller, entry):
            raise WaitlistEntryNotFound(f"There is no waitlist entry {entry_id}.")
        entry.ended_at = now
        entry.end_reason = EndReason.LEFT
        withdrawn = _close_open_offer(session, entry_id, OfferState.WITHDRAWN, now)
    if withdrawn is not None:
        # Its released event passes the timeslot on; if scheduling cannot be reached now, its
        # hold sweeper frees the timeslot at the hold's end (booking knows no appointment for it).
        scheduling.release(withdrawn.timeslot_id, reservation_id=withdrawn.reservation_id)


def _close_open_offer(session: Session, entry_id: int, state: OfferState, now: datetime) -> Any:
    return session.execute(
        update(WaitlistOffer)
        .where(WaitlistOffer.entry_id == entry_id, WaitlistOffer.state == OfferState.OPEN)
        .values(state=state, closed_at=now)
        .returning(WaitlistOffer.timeslot_id, WaitlistOffer.reservation_id)
    ).first()


def _may_manage(caller: Principal, entry: WaitlistEntry) -> bool:
    return caller.role == "admin" or entry.patient_id == caller.id


def view_of(entry: WaitlistEntry, offer: WaitlistOffer | None) -> EntryView:
    return EntryView(
        id=entry.id,
        doctor_id=entry.doctor_id,
        date_from=entry.date_from,
        date_to=entry.date_to,
        created_at=entry.created_at,
        offer=None if offer is None else offer_facts(offer),
    )


def offer_facts(offer: WaitlistOffer) -> dict[str, Any]:
    return {
        "timeslot_id": offer.timeslot_id,
        "start_time": offer.start_time,
        "end_time": offer.end_time,
        "expires_at": offer.expires_at,
    }
