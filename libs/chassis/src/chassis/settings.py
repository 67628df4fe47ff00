"""Settings fragments that service settings classes compose.

Each service's ``config.py`` is the only place its environment is read; it builds
its ``Settings`` from these fragments so that every service spells the shared
variables (``AMQP_URL``, ``CLINIC_TIMEZONE``, ``IDENTITY_URL`` ...) the same way.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_POSTGRES_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


def database_url_field(service: str) -> str:
    """A settings field for a service's database URL.

    Read from ``<SERVICE>_DATABASE_URL`` (so one ``.env`` can serve every service)
    or plain ``DATABASE_URL`` (for a developer running one service alone).
    """
    return Field(
        default=f"{DEFAULT_POSTGRES_SERVER}/clinic_{service}",
        validation_alias=AliasChoices(f"{service.upper()}_DATABASE_URL", "DATABASE_URL"),
    )


def normalise_database_url(url: str) -> str:
    """Accept ``postgres://`` and ``postgresql://`` URLs and use the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def read_secret_file(path: str) -> str:
    """A password from a file (a compose or Kubernetes secret): its text without the final newline."""
    value = Path(path).read_text().removesuffix("\n").removesuffix("\r")
    if not value:
        raise ValueError(f"the secret file {path} is empty")
    return value


def url_with_password(url: str, password: str) -> str:
    """``url`` with ``password`` (percent-encoded) as its user's password, replacing any there."""
    parts = urlsplit(url)
    if not parts.username:
        raise ValueError("a password file needs a URL with a user name, e.g. postgresql://clinic@db/name")
    host = parts.netloc.rpartition("@")[2]
    user = parts.netloc.rpartition("@")[0].partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:{quote(password, safe='')}@{host}"))


def default_pool_size(cores: int | None = None) -> int:
    """``DB_POOL_SIZE``'s default: 2 connections per core, within 5..20."""
    return min(20, max(5, 2 * (cores or os.cpu_count() or 1)))


# The one configuration of every settings class built from the fragments below. pydantic merges
# the ``model_config`` of a class's bases in order, each overriding the one before, and a plain
# ``BaseSettings`` base brings the library's defaults (no env_file, empty values taken, unknown
# names forbidden): so every fragment derives from ChassisSettings, never from BaseSettings
# directly, and a class of several fragments keeps this configuration whatever their order.
CHASSIS_SETTINGS_CONFIG = SettingsConfigDict(
    # A developer's .env beside the process (the containers have none).
    env_file=".env",
    # VAR= (compose's ${VAR:-}, an empty line of .env) means "not set": the default applies.
    env_ignore_empty=True,
    # One .env serves every process: another process's names are not an error.
    extra="ignore",
    populate_by_name=True,
)


class ChassisSettings(BaseSettings):
    """The base of every settings fragment: the chassis's configuration, and nothing read."""

    model_config = CHASSIS_SETTINGS_CONFIG

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        for base in cls.__mro__[1:]:
            plain = issubclass(base, BaseSettings) and not issubclass(base, ChassisSettings)
            if plain and base is not BaseSettings:
                raise TypeError(
                    f"{cls.__name__} mixes in {base.__name__}, a BaseSettings that is not a "
                    "ChassisSettings: its default configuration would replace the chassis's"
                )


class BaseServiceSettings(ChassisSettings):
    """What every service reads: logging, the clinic time zone, database pool sizes."""

    log_level: str = Field(default="INFO", validation_alias="LOG_LEVEL")
    log_format: str = Field(default="json", validation_alias="LOG_FORMAT")
    clinic_timezone: str = Field(default="UTC", validation_alias="CLINIC_TIMEZONE")
    # Connections each process keeps: two per core, at least 5 and at most 20 (5 on 2 cores).
    # No overflow by default: a connection opened for a burst and closed after it costs the
    # server a process start each time; requests past the pool wait for a connection instead.
    db_pool_size: int = Field(
        default_factory=lambda: default_pool_size(), validation_alias="DB_POOL_SIZE", ge=1
    )
    db_max_overflow: int = Field(default=0, validation_alias="DB_MAX_OVERFLOW", ge=0)
    # The async pool of the hot reads (chassis.reads), on top of the pool above: each read holds
    # a connection for one statement on the event loop, so a few serve many requests.
    db_read_pool_size: int = Field(default=3, validation_alias="DB_READ_POOL_SIZE", ge=1)
    # The database password from a file (a compose secret), put into the database URL, which
    # then names only the user: postgresql+psycopg://clinic@identity-db:5432/clinic_identity.
    database_password_file: str | None = Field(default=None, validation_alias="DATABASE_PASSWORD_FILE")

    @model_validator(mode="after")
    def _database_password_from_file(self) -> BaseServiceSettings:
        if self.database_password_file and hasattr(self, "database_url"):
            password = read_secret_file(self.database_password_file)
            self.database_url = url_with_password(self.database_url, password)
        return self

    @field_validator("clinic_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.clinic_timezone)


class BrokerSettings(ChassisSettings):
    """RabbitMQ connection and the outbox relay's pace."""

    amqp_url: str = Field(default=DEFAULT_AMQP_URL, validation_alias="AMQP_URL")
    messaging_enabled: bool = Field(default=True, validation_alias="MESSAGING_ENABLED")
    # Delays (seconds) of a failing event's successive retries before it is dead-lettered;
    # a JSON list, e.g. EVENT_RETRY_DELAYS='[1, 5, 30, 120]'.
    event_retry_delays: tuple[float, ...] = Field(
        default=(1.0, 5.0, 30.0, 120.0), min_length=1, validation_alias="EVENT_RETRY_DELAYS"
    )
    # The broker password from a file (a compose secret), put into AMQP_URL, which then names
    # only the user: amqp://clinic@rabbitmq:5672/%2F.
    amqp_password_file: str | None = Field(default=None, validation_alias="AMQP_PASSWORD_FILE")

    @model_validator(mode="after")
    def _amqp_password_from_file(self) -> BrokerSettings:
        if self.amqp_password_file:
            self.amqp_url = url_with_password(self.amqp_url, read_secret_file(self.amqp_password_file))
        return self


class AuthSettings(ChassisSettings):
    """Where a service finds identity's public keys to verify access tokens."""

    identity_url: str = Field(default="http://127.0.0.1:8001", validation_alias="IDENTITY_URL")
    jwt_issuer: str = Field(default="clinic-identity", validation_alias="JWT_ISSUER")
    jwt_audience: str = Field(default="clinic", validation_alias="JWT_AUDIENCE")

    @property
    def jwks_url(self) -> str:
        return self.identity_url.rstrip("/") + "/internal/jwks"
