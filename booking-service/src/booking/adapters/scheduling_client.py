"""scheduling-service's internal hold/release endpoints (docs/booking-protocol.md).

One pooled ``chassis.http.JsonClient`` per app (keep-alive connections on the standard
library: every booking makes this call, and httpx cost four times the CPU), created and
closed by a start-up hook. Both calls are idempotent by reservation id, which the client's
one resend on a connection the server closed needs. Each call carries booking's service
token (``chassis.service_auth``), never the patient's: scheduling accepts only booking, and
booking has already checked that the patient books for themselves.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from booking.errors import SchedulingUnavailable, TimeslotRefused
from chassis.http import JsonClient, JsonResponse, NoAnswer, Unreachable
from chassis.service_auth import ServiceCredentials, ServiceCredentialUnavailable

log = logging.getLogger("booking.scheduling")

# scheduling's 422 refusals about the requested timeslot itself (the field a client fixes).
FIELD_REFUSALS = {
    "booking_notice": "starts sooner than the doctor's minimum notice",
    "booking_horizon": "starts beyond the doctor's booking horizon",
    "other_doctor": "belongs to another doctor than the appointment's",
}

UNAVAILABLE = "The schedule cannot be reached right now; nothing was booked. Please try again shortly."
# scheduling's refusals of a hold (contracts/http/scheduling.timeslot.hold.json), relayed to the
# patient with booking's words; any other answer is scheduling being unavailable.
REFUSALS = {
    (404, "timeslot_not_found"): "There is no such timeslot.",
    (409, "timeslot_not_available"): "This timeslot is not available any more.",
    (409, "cannot_book_own_timeslot"): "A doctor cannot book an appointment with themselves.",
    (422, "timeslot_started"): "This timeslot has already started; only future timeslots can be booked.",
}


@dataclass(frozen=True, slots=True)
class Hold:
    """A timeslot held at scheduling for one reservation: the facts the appointment copies."""

    timeslot_id: int
    doctor_id: int
    start_time: datetime
    end_time: datetime


class SchedulingClient:
    """Holds and releases timeslots at scheduling-service."""

    def __init__(
        self, base_url: str, *, credentials: ServiceCredentials, timeout: float, max_connections: int = 100
    ) -> None:
        self._http = JsonClient(base_url, timeout=timeout, max_idle=max_connections)
        self._credentials = credentials

    def _authorization(self) -> dict[str, str]:
        return {"Authorization": self._credentials.authorization("scheduling")}

    def close(self) -> None:
        self._http.close()

    def hold(
        self,
        timeslot_id: int,
        *,
        reservation_id: uuid.UUID,
        patient_id: int,
        doctor_id: int | None = None,
        hold_seconds: int | None = None,
    ) -> Hold:
        """Hold ``timeslot_id`` for ``reservation_id``, or raise the domain error scheduling answered.

        With ``doctor_id`` (a reschedule) only a timeslot of that doctor is held.

        When the outcome is unknown (timeout, 5xx, a garbled answer) the hold may
        exist; it is released before ``SchedulingUnavailable`` is raised, so a
        failed booking never leaves the timeslot blocked.
        """
        body: dict[str, Any] = {"reservation_id": str(reservation_id), "patient_id": patient_id}
        if hold_seconds is not None:  # a waitlist offer's own time; else scheduling's HOLD_SECONDS
            body["hold_seconds"] = hold_seconds
        if doctor_id is not None:
            body["doctor_id"] = doctor_id
        try:
            response = self._http.post(
                f"/internal/timeslots/{timeslot_id}/hold", body, headers=self._authorization()
            )
        except ServiceCredentialUnavailable as exc:
            # Nothing was sent: fail closed, nothing to release.
            log.warning("no service token to hold timeslot %s", timeslot_id)
            raise SchedulingUnavailable(UNAVAILABLE) from exc
        except Unreachable as exc:
            # The request never reached scheduling: there is nothing to release.
            log.warning("scheduling unreachable while holding timeslot %s: %s", timeslot_id, exc)
            raise SchedulingUnavailable(UNAVAILABLE) from exc
        except NoAnswer as exc:
            log.warning("holding timeslot %s failed: %s", timeslot_id, exc)
            self.release(timeslot_id, reservation_id=reservation_id)
            raise SchedulingUnavailable(UNAVAILABLE) from exc

        if response.status == 200:
            try:
                return _hold_of(response.json())
            except (ValueError, KeyError, TypeError) as exc:
                log.error("scheduling answered a hold of timeslot %s with an unexpected body", timeslot_id)
                self.release(timeslot_id, reservation_id=reservation_id)
                raise SchedulingUnavailable(UNAVAILABLE) from exc
        code = _problem_code(response)
        if (response.status, code) in REFUSALS:
            raise TimeslotRefused(response.status, code, REFUSALS[response.status, code])
        if response.status == 422 and code in FIELD_REFUSALS:
            # The doctor's booking policy, or a reschedule to another doctor: scheduling's detail
            # says which rule, the field is the timeslot.
            detail = _problem_detail(response) or FIELD_REFUSALS[code]
            raise TimeslotRefused(
                422, code, detail, errors=[{"field": "timeslot_id", "message": FIELD_REFUSALS[code]}]
            )
        log.error("scheduling answered a hold of timeslot %s with %s", timeslot_id, response.status)
        if response.status >= 500:
            self.release(timeslot_id, reservation_id=reservation_id)
        raise SchedulingUnavailable(UNAVAILABLE)

    def release(self, timeslot_id: int, *, reservation_id: uuid.UUID) -> bool:
        """Release this reservation's hold; best effort, True when scheduling confirmed it.

        A hold that could not be released still expires: scheduling's sweeper asks
        booking, learns no appointment exists for the reservation, and frees it.
        """
        try:
            response = self._http.post(
                f"/internal/timeslots/{timeslot_id}/release",
                {"reservation_id": str(reservation_id)},
                headers=self._authorization(),
            )
        except (Unreachable, NoAnswer, ServiceCredentialUnavailable) as exc:
            log.warning(
                "could not release timeslot %s (reservation %s): %s", timeslot_id, reservation_id, exc
            )
            return False
        if response.status != 204:
            log.warning(
                "releasing timeslot %s (reservation %s) answered %s",
                timeslot_id,
                reservation_id,
                response.status,
            )
            return False
        return True


def _hold_of(body: dict[str, Any]) -> Hold:
    start_time = datetime.fromisoformat(body["start_time"])
    end_time = datetime.fromisoformat(body["end_time"])
    if start_time.tzinfo is None or end_time.tzinfo is None:
        raise ValueError("scheduling sent naive datetimes")
    return Hold(
        timeslot_id=int(body["timeslot_id"]),
        doctor_id=int(body["doctor_id"]),
        start_time=start_time,
        end_time=end_time,
    )


def _problem_detail(response: JsonResponse) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    detail = body.get("detail") if isinstance(body, dict) else None
    return detail if isinstance(detail, str) else None


def _problem_code(response: JsonResponse) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("code") if isinstance(body, dict) else None
