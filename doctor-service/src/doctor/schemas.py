"""Request and response models of the doctor API."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from doctor.domain import (
    BIO_MAX_LENGTH,
    MAX_ACTIVE_PER_PATIENT,
    MAX_HORIZON_DAYS,
    MAX_NOTICE_MINUTES,
    MAX_YEARS_OF_EXPERIENCE,
    POLICY_FIELDS,
    SPECIALTY_MAX_LENGTH,
)

Specialty = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=SPECIALTY_MAX_LENGTH)
]
Bio = Annotated[str, StringConstraints(strip_whitespace=True, max_length=BIO_MAX_LENGTH)]
# Strict: "5", 5.0 and true are not numbers of years.
Years = Annotated[int, Field(strict=True, ge=0, le=MAX_YEARS_OF_EXPERIENCE)]


Minutes = Annotated[int, Field(strict=True, ge=0, le=MAX_NOTICE_MINUTES)]
HorizonDays = Annotated[int, Field(strict=True, ge=1, le=MAX_HORIZON_DAYS)]
ActiveLimit = Annotated[int, Field(strict=True, ge=1, le=MAX_ACTIVE_PER_PATIENT)]


class BookingPolicy(BaseModel):
    """A doctor's rules for booking; null means no limit."""

    model_config = ConfigDict(from_attributes=True)

    min_notice_minutes: int = Field(
        description="Bookings start at least this many minutes ahead.", examples=[60]
    )
    booking_horizon_days: int | None = Field(
        description="Bookings start at most this many days ahead.", examples=[30]
    )
    cancellation_notice_minutes: int = Field(
        description="A patient cancels or reschedules only until this many minutes before the start.",
        examples=[1440],
    )
    max_active_per_patient: int | None = Field(
        description="At most this many upcoming appointments of one patient with this doctor.", examples=[2]
    )


class BookingPolicyUpdate(BaseModel):
    """The rules to change; fields left out stay as they are, null lifts a limit."""

    model_config = ConfigDict(extra="forbid")

    min_notice_minutes: Minutes = Field(default=0, description=f"0 to {MAX_NOTICE_MINUTES}.")
    booking_horizon_days: HorizonDays | None = Field(
        default=None, description=f"1 to {MAX_HORIZON_DAYS}, or null."
    )
    cancellation_notice_minutes: Minutes = Field(default=0, description=f"0 to {MAX_NOTICE_MINUTES}.")
    max_active_per_patient: ActiveLimit | None = Field(
        default=None, description=f"1 to {MAX_ACTIVE_PER_PATIENT}, or null."
    )

    @field_validator("min_notice_minutes", "cancellation_notice_minutes", mode="before")
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("may not be null; use 0 for no notice")
        return value

    def changes(self) -> dict[str, object]:
        """Only the fields the client sent."""
        return self.model_dump(include=self.model_fields_set)


class DoctorRead(BaseModel):
    """A doctor as patients and admins see it."""

    model_config = ConfigDict(from_attributes=True)

    id: int = Field(description="The doctor's id, which is also their user id.", examples=[7])
    full_name: str = Field(description="Follows the user's name in identity.", examples=["Ada Lovelace"])
    specialty: str = Field(description="Empty until the doctor fills it in.", examples=["Cardiology"])
    bio: str = Field(examples=["Twenty years in interventional cardiology."])
    years_of_experience: int = Field(ge=0, le=MAX_YEARS_OF_EXPERIENCE, examples=[12])
    booking_policy: BookingPolicy

    @model_validator(mode="before")
    @classmethod
    def _nest_policy(cls, value: Any) -> Any:
        # A profile (models.Doctor) carries the policy as four flat columns.
        if hasattr(value, "min_notice_minutes"):
            fields = ("id", "full_name", "specialty", "bio", "years_of_experience")
            return {
                **{name: getattr(value, name) for name in fields},
                "booking_policy": {name: getattr(value, name) for name in POLICY_FIELDS},
            }
        return value


class DoctorProfileUpdate(BaseModel):
    """The fields a doctor (or an admin) may change; the name follows the user account."""

    model_config = ConfigDict(extra="forbid")

    specialty: Specialty | None = Field(
        default=None, description=f"1 to {SPECIALTY_MAX_LENGTH} characters.", examples=["Cardiology"]
    )
    bio: Bio | None = Field(default=None, description=f"At most {BIO_MAX_LENGTH} characters.")
    years_of_experience: Years | None = Field(
        default=None, description=f"Whole years, 0 to {MAX_YEARS_OF_EXPERIENCE}.", examples=[12]
    )

    @field_validator("specialty", "bio", "years_of_experience")
    @classmethod
    def _not_null(cls, value: object) -> object:
        # Omit a field to leave it unchanged; an explicit null is a mistake, not a reset.
        if value is None:
            raise ValueError("may not be null; omit the field to leave it unchanged")
        return value

    def changes(self) -> dict[str, object]:
        """Only the fields the client sent."""
        return self.model_dump(include=self.model_fields_set)
