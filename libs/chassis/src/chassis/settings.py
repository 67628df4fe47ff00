"""Settings fragments that service settings classes compose.

Each service's ``config.py`` is the only place its environment is read; it builds
its ``Settings`` from these fragments so that every service spells the shared
variables (``AMQP_URL``, ``CLINIC_TIMEZONE``, ``IDENTITY_URL`` ...) the same way.
"""

from __future__ import annotations

import os
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AliasChoices, Field, SecretStr, field_validator
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


def default_pool_size(cores: int | None = None) -> int:
    """``DB_POOL_SIZE``'s default: 2 connections per core, within 5..20."""
    return min(20, max(5, 2 * (cores or os.cpu_count() or 1)))


class BaseServiceSettings(BaseSettings):
    """What every service reads: logging, the clinic time zone, database pool sizes."""

    model_config = SettingsConfigDict(
        env_file=".env", env_ignore_empty=True, extra="ignore", populate_by_name=True
    )

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


class BrokerSettings(BaseSettings):
    """RabbitMQ connection and the outbox relay's pace."""

    amqp_url: str = Field(default=DEFAULT_AMQP_URL, validation_alias="AMQP_URL")
    messaging_enabled: bool = Field(default=True, validation_alias="MESSAGING_ENABLED")
    # Delays (seconds) of a failing event's successive retries before it is dead-lettered;
    # a JSON list, e.g. EVENT_RETRY_DELAYS='[1, 5, 30, 120]'.
    event_retry_delays: tuple[float, ...] = Field(
        default=(1.0, 5.0, 30.0, 120.0), min_length=1, validation_alias="EVENT_RETRY_DELAYS"
    )
    # Retention (chassis.messaging.retention): published outbox rows and inbox rows older than
    # these are deleted every RETENTION_INTERVAL_SECONDS. The inbox keeps at least a day: it
    # must outlive every redelivery of an event (minutes), handlers' own idempotency does the rest.
    retention_enabled: bool = Field(default=True, validation_alias="RETENTION_ENABLED")
    retention_interval_seconds: float = Field(
        default=3600.0, gt=0, validation_alias="RETENTION_INTERVAL_SECONDS"
    )
    outbox_retention_days: float = Field(default=7.0, gt=0, validation_alias="OUTBOX_RETENTION_DAYS")
    inbox_retention_days: float = Field(default=14.0, ge=1, validation_alias="INBOX_RETENTION_DAYS")


class AuthSettings(BaseSettings):
    """Where a service finds identity (its public keys, service tokens) and its own client secret."""

    identity_url: str = Field(default="http://127.0.0.1:8001", validation_alias="IDENTITY_URL")
    jwt_issuer: str = Field(default="clinic-identity", validation_alias="JWT_ISSUER")
    jwt_audience: str = Field(default="clinic", validation_alias="JWT_AUDIENCE")
    # How long the keys fetched from identity's JWKS are used before they are fetched again:
    # a key identity stops publishing stops verifying within this period.
    jwks_refresh_seconds: float = Field(default=300.0, gt=0, validation_alias="JWKS_REFRESH_SECONDS")
    # Service-to-service credentials (chassis.service_auth): a file per service in this
    # directory holds its client secret (created when absent, for the local stack);
    # SERVICE_SECRET gives a service's own secret directly instead.
    service_secrets_dir: str = Field(default="var/service-secrets", validation_alias="SERVICE_SECRETS_DIR")
    service_secret: SecretStr | None = Field(default=None, validation_alias="SERVICE_SECRET")
    # How often each process reads the token revocations its consumer recorded (chassis.revocations).
    token_revocation_poll_seconds: float = Field(
        default=0.5, gt=0, le=5, validation_alias="TOKEN_REVOCATION_POLL_SECONDS"
    )

    def own_service_secret(self, service: str) -> str | None:
        """This service's client secret: ``SERVICE_SECRET``, else its file (created when absent)."""
        if self.service_secret is not None:
            return self.service_secret.get_secret_value()
        from chassis.service_auth import service_secret

        return service_secret(self.service_secrets_dir, service)

    @property
    def jwks_url(self) -> str:
        return self.identity_url.rstrip("/") + "/internal/jwks"
