"""Request and response bodies of the waitlist's HTTP API."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field, field_serializer

from booking.schemas import Id, IsoDate
from chassis.timezones import check_representable

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
