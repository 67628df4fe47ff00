"""Request and response models of the doctor API."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from doctor.domain import BIO_MAX_LENGTH, MAX_YEARS_OF_EXPERIENCE, SPECIALTY_MAX_LENGTH

Specialty = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=SPECIALTY_MAX_LENGTH)
]
Bio = Annotated[str, StringConstraints(strip_whitespace=True, max_length=BIO_MAX_LENGTH)]
# Strict: "5", 5.0 and true are not numbers of years.
Years = Annotated[int, Field(strict=True, ge=0, le=MAX_YEARS_OF_EXPERIENCE)]


class DoctorRead(BaseModel):
    """A doctor as patients and admins see it."""

    model_config = ConfigDict(from_attributes=True)

    id: int = Field(description="The doctor's id, which is also their user id.", examples=[7])
    full_name: str = Field(description="Follows the user's name in identity.", examples=["Ada Lovelace"])
    specialty: str = Field(description="Empty until the doctor fills it in.", examples=["Cardiology"])
    bio: str = Field(examples=["Twenty years in interventional cardiology."])
    years_of_experience: int = Field(ge=0, le=MAX_YEARS_OF_EXPERIENCE, examples=[12])


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
