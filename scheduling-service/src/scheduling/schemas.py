"""Request and response bodies of scheduling-service."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    ValidationInfo,
    field_serializer,
    field_validator,
)

from chassis.timezones import IsoDate, check_representable, date_time_text
from scheduling.domain import MAX_PATTERN_DAYS, TimeslotState, WorkingPattern
from scheduling.models import Timeslot

if TYPE_CHECKING:
    from scheduling.services.reservations import Hold


def _text_only(value: Any) -> Any:
    # JSON has no date type: refuse numbers (read as Unix timestamps by pydantic's lax mode).
    if not isinstance(value, str):
        raise ValueError("must be a string in RFC 3339 / ISO 8601 format")
    return value


# Far-past and far-future values are refused (422) before they overflow in UTC conversions.
RequestDatetime = Annotated[
    datetime,
    BeforeValidator(date_time_text),
    AfterValidator(check_representable),
    Field(description="RFC 3339; without an offset it is read in the clinic time zone."),
]
RequestDate = Annotated[IsoDate, AfterValidator(check_representable), Field(description="YYYY-MM-DD.")]
WallTime = Annotated[time, BeforeValidator(_text_only), Field(description="Local wall time, HH:MM.")]
Weekday = Annotated[StrictInt, Field(ge=0, le=6)]


class TimeslotCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start_time: RequestDatetime
    end_time: RequestDatetime


class BulkTimeslotCreate(BaseModel):
    """A working pattern in the clinic time zone: every ``weekdays`` day from ``date_from`` to ``date_to``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "date_from": "2030-03-04",
                "date_to": "2030-03-08",
                "weekdays": [0, 1, 2, 3, 4],
                "day_start": "09:00",
                "day_end": "17:00",
                "slot_minutes": 30,
                "break_minutes": 0,
            }
        },
    )

    date_from: RequestDate
    date_to: RequestDate = Field(description=f"Inclusive; at most {MAX_PATTERN_DAYS} days from date_from.")
    weekdays: list[Weekday] = Field(min_length=1, max_length=7, description="Monday = 0 ... Sunday = 6.")
    day_start: WallTime
    day_end: WallTime
    slot_minutes: StrictInt = Field(ge=5, le=720)
    break_minutes: StrictInt = Field(default=0, ge=0, le=1440, description="Pause after each timeslot.")

    @field_validator("date_to")
    @classmethod
    def _range(cls, value: date, info: ValidationInfo) -> date:
        date_from = info.data.get("date_from")
        if date_from is not None:
            if value < date_from:
                raise ValueError("must not be before date_from")
            if (value - date_from).days >= MAX_PATTERN_DAYS:
                raise ValueError(f"the range may span at most {MAX_PATTERN_DAYS} days")
        return value

    @field_validator("weekdays")
    @classmethod
    def _unique(cls, value: list[int]) -> list[int]:
        if len(set(value)) != len(value):
            raise ValueError("weekdays must not repeat")
        return value

    @field_validator("day_start", "day_end")
    @classmethod
    def _wall_time(cls, value: time) -> time:
        if value.tzinfo is not None:
            raise ValueError("must be a local time without an offset")
        return value

    @field_validator("day_end")
    @classmethod
    def _after_start(cls, value: time, info: ValidationInfo) -> time:
        day_start = info.data.get("day_start")
        if day_start is not None and value <= day_start:
            raise ValueError("must be after day_start")
        return value

    def pattern(self) -> WorkingPattern:
        return WorkingPattern(
            date_from=self.date_from,
            date_to=self.date_to,
            weekdays=frozenset(self.weekdays),
            day_start=self.day_start,
            day_end=self.day_end,
            slot_minutes=self.slot_minutes,
            break_minutes=self.break_minutes,
        )


class TimeslotRead(BaseModel):
    id: int
    doctor_id: int
    start_time: datetime
    end_time: datetime
    is_available: bool

    @field_serializer("start_time", "end_time")
    def _utc(self, value: datetime) -> datetime:
        return value.astimezone(UTC)

    @classmethod
    def of(cls, timeslot: Timeslot) -> TimeslotRead:
        return cls(
            id=timeslot.id,
            doctor_id=timeslot.doctor_id,
            start_time=timeslot.start_time,
            end_time=timeslot.end_time,
            is_available=timeslot.state == TimeslotState.AVAILABLE,
        )


class BulkCreated(BaseModel):
    created: list[TimeslotRead] = Field(description="The new timeslots, earliest first.")


class HoldRequest(BaseModel):
    reservation_id: uuid.UUID
    patient_id: StrictInt = Field(ge=1)
    # A waitlist offer holds for its own time; a booking's hold for ``HOLD_SECONDS``.
    hold_seconds: StrictInt | None = Field(default=None, ge=1, le=86400)
    # A reschedule: hold only a timeslot of this doctor (the appointment's).
    doctor_id: StrictInt | None = Field(default=None, ge=1)


class ReleaseRequest(BaseModel):
    reservation_id: uuid.UUID


class HoldRead(BaseModel):
    timeslot_id: int
    doctor_id: int
    start_time: datetime
    end_time: datetime
    held_until: datetime | None = Field(description="Null once the timeslot is booked for this reservation.")

    @field_serializer("start_time", "end_time", "held_until")
    def _utc(self, value: datetime | None) -> datetime | None:
        return value.astimezone(UTC) if value is not None else None

    @classmethod
    def of(cls, timeslot: Hold | Timeslot) -> HoldRead:
        return cls(
            timeslot_id=timeslot.id,
            doctor_id=timeslot.doctor_id,
            start_time=timeslot.start_time,
            end_time=timeslot.end_time,
            held_until=timeslot.held_until,
        )
