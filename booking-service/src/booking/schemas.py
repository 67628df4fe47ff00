"""Request and response bodies of booking-service's HTTP API."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_serializer,
    model_validator,
)

from booking.domain import REASON_MAX_LENGTH, AppointmentStatus
from chassis.timezones import IsoDate, check_representable

# Ids are PostgreSQL bigints: anything larger must be a 422, not a database error.
MAX_ID = 2**63 - 1
Id = Annotated[int, Field(ge=1, le=MAX_ID, strict=True)]


class AppointmentCreate(BaseModel):
    """A patient's booking request."""

    timeslot_id: Id = Field(description="The id of a free timeslot.", examples=[42])
    reason: str | None = Field(
        default=None,
        max_length=REASON_MAX_LENGTH,
        description="Why the patient books, for the doctor.",
        examples=["Persistent cough for two weeks."],
    )


class StatusChange(BaseModel):
    """A doctor's or admin's change of an appointment's status."""

    status: AppointmentStatus = Field(description="The new status.", examples=["confirmed"])
    cancellation_reason: str | None = Field(
        default=None,
        max_length=REASON_MAX_LENGTH,
        description="Why the appointment is cancelled; only with `status: cancelled`.",
    )

    @model_validator(mode="after")
    def _reason_only_when_cancelling(self) -> StatusChange:
        if self.cancellation_reason is not None and self.status != AppointmentStatus.CANCELLED:
            raise ValueError("cancellation_reason is only allowed with status cancelled")
        return self


class AppointmentRead(BaseModel):
    """An appointment as clients see it. Names are empty until booking has heard of the user."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    timeslot_id: int
    doctor_id: int
    patient_id: int
    doctor_name: str = Field(description="The doctor's current full name; empty if not known yet.")
    patient_name: str = Field(description="The patient's current full name; empty if not known yet.")
    start_time: datetime
    end_time: datetime
    status: AppointmentStatus
    reason: str
    cancellation_reason: str | None
    created_at: datetime
    updated_at: datetime

    @field_serializer("start_time", "end_time", "created_at", "updated_at")
    def _utc(self, value: datetime) -> datetime:
        return value.astimezone(UTC)


class RescheduleRequest(BaseModel):
    """Where to move an appointment: another free timeslot of the same doctor."""

    timeslot_id: Id = Field(description="The id of a free timeslot of the same doctor.", examples=[43])


class HistoryEntryRead(BaseModel):
    """One change of an appointment; fields that do not apply are null."""

    model_config = ConfigDict(from_attributes=True)

    at: datetime
    actor_id: int | None = Field(description="Who made the change; null when the system did.")
    actor_role: str = Field(description="`patient`, `doctor`, `admin`, or `system` (a cascade).")
    action: str = Field(description="`booked`, `status_changed`, `rescheduled` or `cancelled`.")
    from_status: AppointmentStatus | None
    to_status: AppointmentStatus | None
    from_timeslot_id: int | None
    to_timeslot_id: int | None
    reason: str | None

    @field_serializer("at")
    def _utc(self, value: datetime) -> datetime:
        return value.astimezone(UTC)


class ReservationRead(BaseModel):
    """What became of a reservation (scheduling's hold sweeper asks)."""

    reservation_id: uuid.UUID
    appointment_id: int
    status: AppointmentStatus
    takes_timeslot: bool = Field(description="Whether the appointment keeps its timeslot taken.")


# -- the waitlist and calendar feeds ------------------------------------------------------------

# A day far enough inside the calendar that its bounds in any time zone exist.
Day = Annotated[IsoDate, AfterValidator(check_representable)]


class WaitlistJoin(BaseModel):
    """A patient's request to wait for a doctor's timeslot within a range of clinic days."""

    doctor_id: Id = Field(description="The doctor's id (their user id).", examples=[7])
    date_from: Day = Field(description="First day (YYYY-MM-DD, clinic time zone), not in the past.")
    date_to: Day = Field(description="Last day, inclusive; not before `date_from`.")


class OfferRead(BaseModel):
    timeslot_id: int
    start_time: datetime
    end_time: datetime
    expires_at: datetime = Field(description="Until when only this patient can book the timeslot.")

    @field_serializer("start_time", "end_time", "expires_at")
    def _utc(self, value: datetime) -> datetime:
        return value.astimezone(UTC)


class EntryRead(BaseModel):
    id: int
    doctor_id: int
    date_from: date
    date_to: date
    created_at: datetime
    offer: OfferRead | None = Field(description="The timeslot held for this patient now, if any.")

    @field_serializer("created_at")
    def _utc(self, value: datetime) -> datetime:
        return value.astimezone(UTC)


class FeedUrl(BaseModel):
    url: str = Field(description="The private feed URL: whoever holds it can read the feed.")
