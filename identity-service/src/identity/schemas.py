"""Request and response bodies of identity-service's public API."""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from email_validator import EmailNotValidError, validate_email
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_serializer,
    field_validator,
)

from chassis.service_auth import SERVICE_NAME
from identity.domain import (
    DEFAULT_ROLE,
    EMAIL_MAX_LENGTH,
    FULL_NAME_MAX_LENGTH,
    PASSWORD_MAX_LENGTH,
    PHONE_MAX_LENGTH,
    Role,
    normalise_email,
)

_PHONE = re.compile(r"^\+?[0-9][0-9 ().-]*$")


def _valid_email(value: str) -> str:
    try:
        # test_environment admits *.test addresses (RFC 2606) for development and tests;
        # ASCII only, so that Python's and PostgreSQL's lower() agree on the stored form.
        checked = validate_email(
            value, check_deliverability=False, test_environment=True, allow_smtputf8=False
        )
    except EmailNotValidError as exc:
        raise ValueError(str(exc)) from exc
    return normalise_email(checked.ascii_email or checked.normalized)


def _printable_name(value: str) -> str:
    # Names travel into mails, calendar feeds (RFC 5545 forbids control characters) and logs.
    if any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in value):
        raise ValueError("A name cannot contain control characters or line breaks.")
    return value


def _blank_to_none(value: Any) -> Any:
    if isinstance(value, str) and not value.strip():
        return None
    return value


def _valid_phone(value: str) -> str:
    if not _PHONE.match(value) or sum(c.isdigit() for c in value) < 3:
        raise ValueError("Enter a phone number: digits, optionally a leading +, spaces, dots, dashes or ().")
    return value


Email = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=EMAIL_MAX_LENGTH), AfterValidator(_valid_email)
]
FullName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=FULL_NAME_MAX_LENGTH),
    AfterValidator(_printable_name),
]
PhoneNumber = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=PHONE_MAX_LENGTH), AfterValidator(_valid_phone)
]
Phone = Annotated[PhoneNumber | None, BeforeValidator(_blank_to_none)]  # an empty phone means "no phone"
# Length and strength are domain rules (checked by the use case, with the email at hand);
# the bound here only stops absurd inputs before they are parsed further.
Password = Annotated[str, StringConstraints(min_length=1, max_length=4 * PASSWORD_MAX_LENGTH)]
OpaqueToken = Annotated[str, StringConstraints(min_length=1, max_length=512)]


class RequestBody(BaseModel):
    """Request bodies refuse unknown fields, so a misspelt or read-only field is an error, not a no-op.

    Strict: JSON types are taken as they are (``"is_active": 0`` or ``"true"`` is a 422, not a bool).
    """

    model_config = ConfigDict(extra="forbid", strict=True)


def _not_null(value: Any) -> Any:
    if value is None:
        raise ValueError("This field may be left out, but not null.")
    return value


class UserRead(BaseModel):
    """A user account as clients see it; never the password or its hash."""

    model_config = ConfigDict(from_attributes=True)

    id: int = Field(examples=[7])
    email: str = Field(examples=["ada@example.com"])
    full_name: str = Field(examples=["Ada Lovelace"])
    phone: str | None = Field(examples=["+44 20 7946 0000"])
    role: Role = Field(examples=["patient"])
    is_active: bool = Field(examples=[True])
    date_joined: datetime = Field(examples=["2026-11-27T09:30:00Z"])

    @field_serializer("date_joined")
    def _in_utc(self, value: datetime) -> datetime:
        # The database answers in its session's time zone; the contract answers in UTC.
        return value.astimezone(UTC)


class UserRegister(RequestBody):
    email: Email = Field(
        description="Unique, case-insensitively; stored lower-cased.", examples=["ada@example.com"]
    )
    password: Password = Field(
        description="At least 8 characters, not entirely numeric, not the email, not a common password.",
        examples=["correct horse battery"],
    )
    full_name: FullName = Field(examples=["Ada Lovelace"])
    role: Literal["patient", "doctor"] = Field(
        default=DEFAULT_ROLE, description="`admin` cannot be chosen here.", examples=["patient"]
    )
    phone: Phone = Field(default=None, examples=["+44 20 7946 0000"])


class UserUpdateMe(RequestBody):
    """Fields left out stay as they are. Changing the password requires the current one."""

    full_name: FullName | None = Field(default=None, examples=["Ada King"])
    phone: Phone = Field(default=None, description="null or empty clears it.", examples=["+44 20 7946 0001"])
    password: Password | None = Field(default=None, description="The new password.")
    current_password: Password | None = Field(default=None, description="Required with `password`.")

    @field_validator("full_name", "password")
    @classmethod
    def _reject_null(cls, value: Any) -> Any:
        return _not_null(value)


class UserAdminUpdate(RequestBody):
    """Fields left out stay as they are. `is_active: false` deactivates, like DELETE."""

    full_name: FullName | None = Field(default=None, examples=["Dr Ada Lovelace"])
    phone: Phone = Field(default=None, description="null or empty clears it.")
    role: Role | None = Field(default=None, examples=["doctor"])
    is_active: bool | None = Field(default=None, examples=[False])

    @field_validator("full_name", "role", "is_active")
    @classmethod
    def _reject_null(cls, value: Any) -> Any:
        return _not_null(value)


class LoginRequest(RequestBody):
    email: Annotated[str, StringConstraints(min_length=1, max_length=EMAIL_MAX_LENGTH)] = Field(
        examples=["ada@example.com"]
    )
    password: Password = Field(examples=["correct horse battery"])


class RefreshRequest(RequestBody):
    refresh: OpaqueToken = Field(description="A refresh token from login or an earlier refresh.")


class TokenPair(BaseModel):
    access: str = Field(description="A signed access token (JWT, EdDSA) for `Authorization: Bearer`.")
    refresh: str = Field(description="An opaque, single-use refresh token.")
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int = Field(description="Seconds until `access` expires.", examples=[900])


class UserFilters(BaseModel):
    """Query filters of the admin user list."""

    role: Role | None = Field(default=None, description="Only users with this role.")
    search: Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)] | None = Field(
        default=None, description="Case-insensitive part of the email or the full name."
    )
    is_active: bool | None = Field(
        default=None, description="Only active (true) or deactivated (false) users."
    )


class NewAdmin(BaseModel):
    """The email and name of an admin made by ``identity createadmin`` or ADMIN_EMAIL."""

    email: Email
    full_name: FullName


class ServiceTokenRequest(BaseModel):
    """A service's request for a service token (client credentials)."""

    model_config = ConfigDict(extra="forbid")

    grant_type: Literal["client_credentials"]
    audience: Annotated[str, StringConstraints(pattern=SERVICE_NAME.pattern)] = Field(
        description="The service the token is for (the one the caller is about to call)."
    )
