"""The soak's waitlist: patients join and leave, offered patients book their offers, and the
checker proves that no timeslot is held without an offer or an appointment behind it.

Offers last a few seconds in the soak (``WAITLIST_OFFER_MINUTES``), so they expire and pass
on while services are killed and the broker is cut.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import create_engine, text

from chassis.settings import normalise_database_url

if TYPE_CHECKING:
    from .soak import Client, Traffic

WAITLIST_ENV = {"WAITLIST_OFFER_MINUTES": "0.1", "WAITLIST_INTERVAL_SECONDS": "0.5"}


def _rows(database_url: str, sql: str) -> list[Any]:
    engine = create_engine(normalise_database_url(database_url))
    try:
        with engine.connect() as connection:
            return list(connection.execute(text(sql)))
    finally:
        engine.dispose()


# -- traffic ---------------------------------------------------------------------------------


def join_waitlist(traffic: Traffic, client: Client, rng: random.Random) -> None:
    """A patient waits for a doctor over a few days where the soak's timeslots lie."""
    patient, doctor = traffic.ledger.pick("patient", rng), traffic.ledger.pick("doctor", rng)
    if patient is None or doctor is None or not patient.access:
        return
    first = (datetime.now(UTC) + timedelta(days=2)).date()
    body = {
        "doctor_id": doctor.id,
        "date_from": first.isoformat(),
        "date_to": (first + timedelta(days=rng.randint(0, 2))).isoformat(),
    }
    response = client.call("join waitlist", "POST", "/api/waitlist/", patient.access, json=body)
    if response is not None and response.status_code == 201:
        with traffic.ledger.lock:
            traffic.ledger.entries[response.json()["id"]] = patient.id


def leave_waitlist(traffic: Traffic, client: Client, rng: random.Random) -> None:
    with traffic.ledger.lock:
        entries = list(traffic.ledger.entries.items())
    if not entries:
        return
    entry_id, patient_id = rng.choice(entries)
    patient = traffic.ledger.people.get(patient_id)
    if patient is not None and patient.active and patient.access:
        client.call("leave waitlist", "DELETE", f"/api/waitlist/{entry_id}/", patient.access)


def book_offer(traffic: Traffic, client: Client, rng: random.Random) -> None:
    """A patient in line looks at their entries and books a timeslot offered to them."""
    with traffic.ledger.lock:
        waiting = list(set(traffic.ledger.entries.values()))
    if not waiting:
        return
    patient = traffic.ledger.people.get(rng.choice(waiting))
    if patient is None or not patient.active or not patient.access:
        return
    response = client.call("my waitlist", "GET", "/api/waitlist/me/", patient.access)
    if response is None or response.status_code != 200:
        return
    offers = [e["offer"] for e in response.json()["results"] if e["offer"]]
    if offers:
        traffic._book(client, patient, rng.choice(offers)["timeslot_id"], "book (offer)")


ACTIONS = ((join_waitlist, 3), (leave_waitlist, 1), (book_offer, 4))


# -- the checker -----------------------------------------------------------------------------


def open_offers(urls: dict[str, str]) -> dict[Any, Any]:
    """Reservation id → timeslot id of every open waitlist offer."""
    rows = _rows(
        urls["booking"], "SELECT reservation_id, timeslot_id FROM waitlist_offers WHERE state = 'open'"
    )
    return {row.reservation_id: row.timeslot_id for row in rows}


def held_for_nobody(urls: dict[str, str]) -> list[Any]:
    """Held timeslots whose reservation is no open offer's (an appointment's hold in flight, or nobody's)."""
    offered = open_offers(urls)
    held = _rows(urls["scheduling"], "SELECT id, reservation_id FROM timeslots WHERE state = 'held'")
    return [slot for slot in held if offered.get(slot.reservation_id) != slot.id]


def pending_openings(urls: dict[str, str]) -> int:
    return _rows(urls["booking"], "SELECT count(*) FROM waitlist_openings")[0][0]


def anomalies(urls: dict[str, str], timeslots: dict[int, Any]) -> list[str]:
    """What the waitlist may never leave behind, once the system settled."""
    found: list[str] = []
    for reservation_id, timeslot_id in open_offers(urls).items():
        slot = timeslots.get(timeslot_id)
        if slot is None or slot.state != "held" or slot.reservation_id != reservation_id:
            found.append(
                f"open offer {reservation_id} of timeslot {timeslot_id}: the timeslot is not held for it"
            )
    # An accepted offer put one of its patient's appointments into the offered timeslot (booked
    # there, or moved there by a reschedule); a later reschedule may have moved it on and given it
    # a new reservation, so the history is the witness.
    unbooked = _rows(
        urls["booking"],
        "SELECT o.reservation_id, o.timeslot_id FROM waitlist_offers o "
        "JOIN waitlist_entries e ON e.id = o.entry_id WHERE o.state = 'accepted' AND NOT EXISTS "
        "(SELECT 1 FROM appointments a JOIN appointment_history h ON h.appointment_id = a.id "
        "WHERE a.patient_id = e.patient_id AND h.action IN ('booked', 'rescheduled') "
        "AND h.to_timeslot_id = o.timeslot_id)",
    )
    found += [
        f"accepted offer {offer.reservation_id}: no appointment went into timeslot {offer.timeslot_id}"
        for offer in unbooked
    ]
    unexplained = _rows(
        urls["booking"],
        "SELECT e.id FROM waitlist_entries e WHERE e.end_reason = 'booked' AND NOT EXISTS "
        "(SELECT 1 FROM waitlist_offers o WHERE o.entry_id = e.id AND o.state = 'accepted')",
    )
    found += [f"waitlist entry {row.id} ended as booked without an accepted offer" for row in unexplained]
    twice = _rows(
        urls["booking"],
        "SELECT entry_id FROM waitlist_offers WHERE state = 'open' GROUP BY entry_id HAVING count(*) > 1",
    )
    found += [f"waitlist entry {row.entry_id} has more than one open offer" for row in twice]
    return found
