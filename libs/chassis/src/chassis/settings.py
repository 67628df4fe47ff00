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

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_POSTGRES_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
# The local server's superuser and broker administrator: only ``<service> provision`` (and
# ``migrate``, for the broker's topology) use them; services run as their own roles and users.
DEFAULT_ADMIN_DATABASE_URL = f"{DEFAULT_POSTGRES_SERVER}/postgres"
DEFAULT_AMQP_ADMIN_URL = DEFAULT_AMQP_URL


def local_role(service: str) -> str:
    """The PostgreSQL role and RabbitMQ user a service runs as by default: ``clinic_<service>``."""
    return f"clinic_{service}"


def database_url_field(service: str) -> str:
    """A settings field for a service's database URL, as the service runs (least privilege).

    Read from ``<SERVICE>_DATABASE_URL`` (so one ``.env`` can serve every service)
    or plain ``DATABASE_URL`` (for a developer running one service alone). The default is
    the local server as the service's own role, ``clinic_<service>`` (``make run`` creates it).
    """
    return Field(
        default=f"postgresql+psycopg://{local_role(service)}@127.0.0.1:5432/clinic_{service}",
        validation_alias=AliasChoices(f"{service.upper()}_DATABASE_URL", "DATABASE_URL"),
    )


def migration_database_url_field(service: str) -> str | None:
    """A settings field for the URL ``<service> migrate`` connects with: the schema's owner.

    ``<SERVICE>_MIGRATION_DATABASE_URL`` or ``MIGRATION_DATABASE_URL``. Unset, it is the local
    owner role ``clinic_<service>_owner`` when the database URL is the default too, and the
    database URL itself (one role for both, as before) when only that one was given.
    """
    return Field(
        default=None,
        validation_alias=AliasChoices(f"{service.upper()}_MIGRATION_DATABASE_URL", "MIGRATION_DATABASE_URL"),
    )


def admin_database_url_field(service: str) -> str:
    """A settings field for the URL ``<service> provision`` creates roles and the database with.

    A role that may create roles and databases (the local default is the ``postgres``
    superuser); its database part names the maintenance database to connect to.
    """
    return Field(
        default=DEFAULT_ADMIN_DATABASE_URL,
        validation_alias=AliasChoices(f"{service.upper()}_ADMIN_DATABASE_URL", "ADMIN_DATABASE_URL"),
    )


def amqp_url_field(service: str) -> str:
    """A settings field for the broker URL a service runs with, as its own RabbitMQ user.

    ``<SERVICE>_AMQP_URL``, else the shared ``AMQP_URL``; the default is the local broker as
    ``clinic_<service>`` (password ``clinic_<service>``: local only, ``make run`` creates it).
    """
    user = local_role(service)
    return Field(
        default=f"amqp://{user}:{user}@127.0.0.1:5672/%2F",
        validation_alias=AliasChoices(f"{service.upper()}_AMQP_URL", "AMQP_URL"),
    )


def normalise_database_url(url: str) -> str:
    """Accept ``postgres://`` and ``postgresql://`` URLs and use the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


# Every connection of a service runs its session in UTC. psycopg gives ``timestamptz`` values in
# the session's time zone, and PostgreSQL adds days and months to them in it: in UTC, every
# datetime read is UTC (events, webhooks, FHIR resources say ``Z``) and a day is 24 hours,
# whatever zone the server or the database is set to. (PgBouncer 1.20 and later pass it on.)
SESSION_TIME_ZONE = "UTC"


def session_options(url: str) -> str:
    """libpq's ``options`` for a connection to ``url``: the URL's own, and the session's time zone."""
    from psycopg.conninfo import conninfo_to_dict

    conninfo = normalise_database_url(url).replace("postgresql+psycopg://", "postgresql://", 1)
    own = str(conninfo_to_dict(conninfo).get("options") or "")
    return f"{own} -c TimeZone={SESSION_TIME_ZONE}".strip()


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


# Each URL setting that may take its user's password from a file, and the setting naming that
# file (``*_PASSWORD_FILE``, a path: compose mounts secrets at /run/secrets/<name>). A file
# replaces any password in the URL; settings a class does not have are skipped.
PASSWORD_FILES = {
    "database_url": "database_password_file",
    "migration_database_url": "migration_database_password_file",
    "admin_database_url": "admin_database_password_file",
    "amqp_url": "amqp_password_file",
    "amqp_admin_url": "amqp_admin_password_file",
}


def apply_password_files(settings: BaseSettings) -> None:
    """Put each ``*_PASSWORD_FILE``'s password into its URL setting (PASSWORD_FILES)."""
    fields = type(settings).model_fields
    for url_field, file_field in PASSWORD_FILES.items():
        if url_field not in fields or file_field not in fields:
            continue
        path, url = getattr(settings, file_field), getattr(settings, url_field)
        if path and url:
            setattr(settings, url_field, url_with_password(url, read_secret_file(path)))


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
    # Prometheus metrics (chassis.metrics) at http://METRICS_HOST:METRICS_PORT/metrics, a port of the
    # process's own that the gateway never routes to; unset, none are served. The Procfile gives
    # each service its <SERVICE>_METRICS_PORT; tracing is configured by the standard OTEL_* variables.
    metrics_port: int | None = Field(default=None, validation_alias="METRICS_PORT", ge=1, le=65535)
    # Unset: the address the API listens on (SERVICE_HOST: 0.0.0.0 in the images), else 127.0.0.1.
    metrics_host: str | None = Field(
        default=None, validation_alias=AliasChoices("METRICS_HOST", "SERVICE_HOST")
    )
    # The database passwords from files (compose or Kubernetes secrets), put into the URLs,
    # which then name only the user: postgresql+psycopg://clinic_identity@identity-db:5432/
    # clinic_identity. One for the service's own URL, one for its migration URL (the schema's
    # owner) and one for its admin URL (``<service> provision``); see PASSWORD_FILES.
    database_password_file: str | None = Field(default=None, validation_alias="DATABASE_PASSWORD_FILE")
    migration_database_password_file: str | None = Field(
        default=None, validation_alias="MIGRATION_DATABASE_PASSWORD_FILE"
    )
    admin_database_password_file: str | None = Field(
        default=None, validation_alias="ADMIN_DATABASE_PASSWORD_FILE"
    )

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

    @model_validator(mode="after")
    def _pair_privileged_urls(self) -> BaseServiceSettings:
        """Put the passwords of the *_PASSWORD_FILE settings into their URLs, then fill the
        unset migration and broker-admin URLs (see their fields)."""
        apply_password_files(self)
        explicit = self.model_fields_set
        if "migration_database_url" in type(self).model_fields and self.migration_database_url is None:
            url = self.database_url
            if "database_url" not in explicit:
                # The default clinic_<service> on the local server: its owner is clinic_<service>_owner.
                from sqlalchemy.engine import make_url

                default = make_url(url)
                url = default.set(username=f"{default.username}_owner").render_as_string(hide_password=False)
            self.migration_database_url = url
        if "amqp_admin_url" in type(self).model_fields and self.amqp_admin_url is None:
            self.amqp_admin_url = self.amqp_url if "amqp_url" in explicit else DEFAULT_AMQP_ADMIN_URL
        return self


class BrokerSettings(ChassisSettings):
    """RabbitMQ connection and the outbox relay's pace.

    A service replaces ``amqp_url`` with ``amqp_url_field(<service>)``; ``amqp_admin_url``
    (``AMQP_ADMIN_URL``) is the administrator that ``<service> migrate`` declares the exchanges
    and queues with and ``<service> provision`` creates the service's user with; unset, it is
    ``AMQP_URL`` when that was given (one user for everything, as before), else the local guest.
    ``<service> provision`` creates users with ``rabbitmqctl`` (``RABBITMQCTL``) on the broker's
    own machine, or through the management API at ``RABBITMQ_MANAGEMENT_URL`` when that is set.
    """

    amqp_url: str = Field(default=DEFAULT_AMQP_URL, validation_alias="AMQP_URL")
    amqp_admin_url: str | None = Field(default=None, validation_alias="AMQP_ADMIN_URL")
    rabbitmq_management_url: str | None = Field(default=None, validation_alias="RABBITMQ_MANAGEMENT_URL")
    rabbitmqctl: str = Field(default="rabbitmqctl", validation_alias="RABBITMQCTL")
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
    # The broker passwords from files (compose secrets), put into AMQP_URL (the service's own
    # user) and AMQP_ADMIN_URL (the administrator), which then name only the user:
    # amqp://clinic_booking@rabbitmq:5672/%2F (see PASSWORD_FILES).
    amqp_password_file: str | None = Field(default=None, validation_alias="AMQP_PASSWORD_FILE")
    amqp_admin_password_file: str | None = Field(default=None, validation_alias="AMQP_ADMIN_PASSWORD_FILE")

    @model_validator(mode="after")
    def _amqp_passwords_from_files(self) -> BrokerSettings:
        apply_password_files(self)
        return self


class AuthSettings(ChassisSettings):
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
