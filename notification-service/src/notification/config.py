"""notification-service settings: the only place its environment is read."""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Annotated
from urllib.parse import parse_qs, unquote, urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode

from chassis.service_settings import service_settings
from notification.domain import DEFAULT_RETRY_DELAYS, SmtpServer


class Settings(service_settings("notification")):
    """Everything notification-service reads: the chassis' settings, its URLs, and its own."""

    # Webhooks. Targets on loopback, private or link-local addresses are refused unless allowed
    # (the local stack of `make run` allows them; compose and Kubernetes do not).
    webhook_allow_private_targets: bool = Field(
        default=False, validation_alias="WEBHOOK_ALLOW_PRIVATE_TARGETS"
    )
    webhook_timeout_seconds: float = Field(
        default=10.0, gt=0, le=30, validation_alias="WEBHOOK_TIMEOUT_SECONDS"
    )
    webhook_concurrency: int = Field(default=8, ge=1, le=64, validation_alias="WEBHOOK_CONCURRENCY")
    # Delays (seconds) between a delivery's or a mail's attempts, kept in its row; after the
    # last one it is failed. The default spans more than 24 hours (domain.DEFAULT_RETRY_DELAYS).
    delivery_retry_delays: tuple[float, ...] = Field(
        default=DEFAULT_RETRY_DELAYS, min_length=1, validation_alias="DELIVERY_RETRY_DELAYS"
    )
    # How often the workers look for due deliveries and mails (a new row is also sent at once
    # by the process whose consumer wrote it).
    delivery_poll_seconds: float = Field(default=0.5, gt=0, le=30, validation_alias="DELIVERY_POLL_SECONDS")
    workers_enabled: bool = Field(default=True, validation_alias="NOTIFICATION_WORKERS_ENABLED")

    # Email. Without SMTP_URL no mail is written or sent (start-up says so).
    smtp_url: str | None = Field(default=None, validation_alias="SMTP_URL")
    # The SMTP user's password from a file (a compose or Kubernetes secret) instead of the URL;
    # an empty file means none.
    smtp_password_file: str | None = Field(default=None, validation_alias="SMTP_PASSWORD_FILE")
    # The CA certificate(s) (PEM) that the mail server's TLS certificate is checked against,
    # instead of the system's: a relay with a certificate of the clinic's own CA.
    smtp_ca_file: str | None = Field(default=None, validation_alias="SMTP_CA_FILE")
    mail_from: str = Field(default="Clinic <no-reply@clinic.invalid>", validation_alias="MAIL_FROM")
    smtp_timeout_seconds: float = Field(default=10.0, gt=0, le=60, validation_alias="SMTP_TIMEOUT_SECONDS")
    # Hours before an active appointment at which its patient is reminded, e.g. "24,2".
    reminder_hours: Annotated[tuple[int, ...], NoDecode] = Field(
        default=(24,), validation_alias="REMINDER_HOURS"
    )
    reminder_sweep_seconds: float = Field(default=30.0, gt=0, validation_alias="REMINDER_SWEEP_SECONDS")
    clinic_name: str = Field(default="Clinic", validation_alias="CLINIC_NAME")

    # Retention (adapters/retention.py): mails and webhook deliveries that nothing sends again,
    # written this many days ago, and appointments that ended this long ago, are deleted. After
    # the inbox forgets an event (INBOX_RETENTION_DAYS), a mail's key and a delivery's
    # (subscription, event) are what keep that event, delivered again, from going out twice;
    # and a reminder's key keeps the sweep from writing it again until its appointment starts.
    # So it must outlast both (checked below); 90 days keeps a quarter of delivery log for
    # admins (and failed deliveries to redeliver), not the patients' names in bodies for ever.
    notification_retention_days: float = Field(
        default=90.0, gt=0, validation_alias="NOTIFICATION_RETENTION_DAYS"
    )

    @field_validator("reminder_hours", mode="before")
    @classmethod
    def _hours_list(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part for part in value.replace(" ", "").split(",") if part]
        return value

    @field_validator("reminder_hours")
    @classmethod
    def _hours_range(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(not 1 <= hours <= 24 * 14 for hours in value):
            raise ValueError("each reminder is 1 to 336 hours before the appointment")
        return tuple(sorted(set(value), reverse=True))

    @model_validator(mode="after")
    def _retention_outlasts_the_inbox_and_the_reminders(self) -> Settings:
        days = self.notification_retention_days
        if days <= self.inbox_retention_days:
            raise ValueError(
                f"NOTIFICATION_RETENTION_DAYS ({days:g}) must be longer than INBOX_RETENTION_DAYS "
                f"({self.inbox_retention_days:g}): its rows are what keep a redelivered event from "
                "being sent twice once the inbox has forgotten it"
            )
        if days * 24 <= max(self.reminder_hours, default=0):
            raise ValueError(
                f"NOTIFICATION_RETENTION_DAYS ({days:g}) must be longer than the earliest reminder "
                f"({max(self.reminder_hours)} hours): a reminder deleted before its appointment "
                "starts would be written and sent again"
            )
        return self

    @property
    def smtp(self) -> SmtpServer | None:
        """The mail server of SMTP_URL (None: no mail); a malformed URL fails the app's start."""
        if not self.smtp_url:
            return None
        server = smtp_server(self.smtp_url)
        if self.smtp_password_file:
            password = Path(self.smtp_password_file).read_text().strip()
            server = replace(server, password=password or None)
        if self.smtp_ca_file:
            if not (server.tls or server.starttls):
                raise ValueError(
                    "SMTP_CA_FILE is set but SMTP_URL speaks no TLS (smtps:// or ?starttls=true)"
                )
            if not Path(self.smtp_ca_file).is_file():
                raise ValueError(f"SMTP_CA_FILE {self.smtp_ca_file} is not a file")
            server = replace(server, ca_file=self.smtp_ca_file)
        return server


def smtp_server(url: str) -> SmtpServer:
    """``smtp://[user:pass@]host:port[?starttls=true]`` (``smtps://`` for TLS from the start)."""
    parts = urlsplit(url)
    if parts.scheme not in {"smtp", "smtps"} or not parts.hostname:
        raise ValueError("SMTP_URL must look like smtp://[user:pass@]host:port[?starttls=true]")
    query = parse_qs(parts.query)
    return SmtpServer(
        host=parts.hostname,
        port=parts.port or (465 if parts.scheme == "smtps" else 25),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        tls=parts.scheme == "smtps",
        starttls=query.get("starttls", ["false"])[0].lower() in {"1", "true", "yes"},
    )


@lru_cache
def get_settings() -> Settings:
    return Settings()
