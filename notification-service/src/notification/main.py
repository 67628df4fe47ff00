"""notification-service application factory: ``uvicorn --factory notification.main:create_app``."""

from __future__ import annotations

import logging

from fastapi import FastAPI

from chassis.app import Hook
from chassis.assembly import consuming_service_app
from chassis.db import Database
from chassis.workers import PollingWorker, worker_hook
from notification import api, events
from notification.adapters.mail_worker import MailWorker
from notification.adapters.mailer import SmtpMailer, sender_domain
from notification.adapters.metrics import backlog_hook
from notification.adapters.retention import notification_retention_tasks
from notification.adapters.webhook_sender import WebhookSender
from notification.adapters.webhook_worker import WebhookWorker
from notification.config import Settings
from notification.errors import STATUS_OF
from notification.services.mails import queue_due_reminders
from notification.services.news import MailPolicy

log = logging.getLogger("notification")


def create_app(settings: Settings | None = None) -> FastAPI:
    """The notification-service app: the consumer turns booking's and identity's events into
    rows to send (mail rows only with SMTP_URL); the workers send them."""
    settings = settings or Settings()
    mail = MailPolicy(domain=sender_domain(settings.mail_from)) if settings.smtp else None
    if mail is None:
        log.warning("SMTP_URL is not set: no mail is sent (webhooks are)")
    return consuming_service_app(
        "notification",
        settings,
        title="Clinic notification API",
        description="Webhooks for other systems (Standard Webhooks), and the mails and reminders "
        "patients and doctors get.",
        routers=[api.router],
        status_of=STATUS_OF,
        consumed=events.consumed(mail),
        openapi_tags=[
            {"name": "webhooks", "description": "Admins subscribe other systems to appointment events."}
        ],
        more_hooks=lambda settings, db: [backlog_hook(db), *worker_hooks(settings, db, mail)],
        retention_tasks=lambda db: notification_retention_tasks(
            db, days=settings.notification_retention_days
        ),
    )


def worker_hooks(settings: Settings, db: Database, mail: MailPolicy | None) -> list[Hook]:
    """The webhook worker; with mail, the mail worker and the reminder sweep."""
    if not settings.workers_enabled:
        return []
    interval = settings.delivery_poll_seconds
    sender = WebhookSender(
        timeout=settings.webhook_timeout_seconds,
        allow_private=settings.webhook_allow_private_targets,
        max_connections=settings.webhook_concurrency,
    )
    webhooks = WebhookWorker(
        db,
        sender,
        concurrency=settings.webhook_concurrency,
        retry_delays=settings.delivery_retry_delays,
        interval=interval,
    )
    hooks = [worker_hook(webhooks.poller, "webhook_worker", close=webhooks.close)]
    if mail is None or settings.smtp is None:
        return hooks
    mailer = MailWorker(
        db,
        SmtpMailer(settings.smtp, timeout=settings.smtp_timeout_seconds),
        sender=settings.mail_from,
        tz=settings.tz,
        clinic_name=settings.clinic_name,
        retry_delays=settings.delivery_retry_delays,
        interval=interval,
    )
    hours, domain = settings.reminder_hours, mail.domain
    return [
        *hooks,
        worker_hook(mailer.poller, "mail_worker"),
        worker_hook(
            PollingWorker(
                "reminder-sweep",
                lambda: queue_due_reminders(db, hours, domain) and 0,
                interval=settings.reminder_sweep_seconds,
            ),
            "reminder_sweep",
        ),
    ]
