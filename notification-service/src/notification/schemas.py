"""Request and response models of the webhooks admin API."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, field_serializer

from notification.domain import DESCRIPTION_MAX_LENGTH, EVENT_TYPES, URL_MAX_LENGTH, check_event_types

EventType = Literal[EVENT_TYPES + ("*",)]  # type: ignore[valid-type]
Url = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=URL_MAX_LENGTH)]
EventTypes = Annotated[
    list[EventType],
    Field(min_length=1, max_length=len(EVENT_TYPES) + 1, examples=[["appointment.booked"]]),
    AfterValidator(check_event_types),
]
Description = Annotated[str, StringConstraints(max_length=DESCRIPTION_MAX_LENGTH)]


class SubscriptionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Url = Field(description="Where deliveries are POSTed: http or https.")
    event_types: EventTypes = Field(description='The event types to deliver, or `["*"]` for all.')
    description: Description = ""


class SubscriptionUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Url | None = None
    event_types: EventTypes | None = None
    description: Description | None = None
    is_active: bool | None = None

    def changes(self) -> dict[str, Any]:
        """The fields given, without nulls (a null changes nothing)."""
        return {
            name: value for name, value in self.model_dump(exclude_unset=True).items() if value is not None
        }


class SubscriptionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    url: str
    event_types: list[str]
    description: str
    is_active: bool
    secret: str = Field(description="`whsec_` + base64: the key of the `webhook-signature` HMAC.")
    created_at: datetime

    @field_serializer("created_at")
    def _utc(self, value: datetime) -> datetime:
        return value.astimezone(UTC)


class DeliveryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    event_type: str
    webhook_id_header: str = Field(validation_alias="webhook_id", description="The `webhook-id` sent.")
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    last_status_code: int | None
    last_attempt_at: datetime | None
    last_error: str | None = Field(description="Why the last attempt failed (null: it did not).")
    response_excerpt: str | None = Field(description="The start of the receiver's last answer.")
    next_attempt_at: datetime | None
    created_at: datetime

    @field_serializer("last_attempt_at", "next_attempt_at", "created_at")
    def _utc(self, value: datetime | None) -> datetime | None:
        return value.astimezone(UTC) if value is not None else None
