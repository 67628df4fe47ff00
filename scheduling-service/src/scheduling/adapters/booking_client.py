"""booking-service's internal reservation lookup, asked by the hold sweeper.

``GET {BOOKING_URL}/internal/reservations/{id}`` (``contracts/http/booking.reservation.read.json``):
200 with whether the appointment takes its timeslot (booking's judgement), or 404
``reservation_not_found`` when no appointment was stored. Each call
carries scheduling's service token (``chassis.service_auth``); booking answers only
scheduling. Without a token (identity unreachable) the answer is "unknown": a hold is
never freed on a guess.
"""

from __future__ import annotations

import logging
import uuid

import httpx

from chassis.service_auth import ServiceCredentials, ServiceCredentialUnavailable
from chassis.tracing import outgoing_headers
from scheduling.services.reservations import ReservationAnswer

log = logging.getLogger("scheduling.booking")

UNKNOWN = ReservationAnswer(found=None)


class BookingClient:
    """Asks booking what became of a reservation; any doubt answers "unknown"."""

    def __init__(self, base_url: str, *, timeout: float, credentials: ServiceCredentials) -> None:
        self._http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout)
        self._credentials = credentials

    def close(self) -> None:
        self._http.close()

    def reservation(self, reservation_id: uuid.UUID) -> ReservationAnswer:
        try:
            authorization = self._credentials.authorization("booking")
        except ServiceCredentialUnavailable:
            log.warning("no service token to ask booking about reservation %s", reservation_id)
            return UNKNOWN
        try:
            response = self._http.get(
                f"/internal/reservations/{reservation_id}",
                headers=outgoing_headers({"Authorization": authorization}),
            )
        except httpx.HTTPError as exc:
            log.warning("booking unreachable while asking about reservation %s: %s", reservation_id, exc)
            return UNKNOWN
        body = _json(response)
        if response.status_code == 200 and isinstance(body.get("takes_timeslot"), bool):
            return ReservationAnswer(found=True, takes_timeslot=body["takes_timeslot"])
        # Only booking's own "no such reservation" frees a hold: a 404 from a wrong
        # URL or a route that does not exist must never free it.
        if response.status_code == 404 and body.get("code") == "reservation_not_found":
            return ReservationAnswer(found=False)
        log.warning("booking answered %s about reservation %s", response.status_code, reservation_id)
        return UNKNOWN


def _json(response: httpx.Response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
