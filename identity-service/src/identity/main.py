"""identity-service application factory: ``uvicorn --factory identity.main:create_app``."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import FastAPI

from chassis.app import Hook, create_service_app
from chassis.health import amqp_check
from chassis.messaging import messaging_hooks, service_retention_hooks
from chassis.observability import configure_logging
from identity import api, services
from identity.adapters.components import Components
from identity.adapters.retention import identity_retention_tasks
from identity.adapters.user_status_listener import UserStatusListener
from identity.config import Settings
from identity.domain import ADMIN
from identity.errors import STATUS_OF, WeakPassword, install_authentication_challenge
from identity.schemas import NewAdmin

log = logging.getLogger("identity.main")

OPENAPI_TAGS = [
    {"name": "auth", "description": "Registration, login, token refresh and the caller's own account."},
    {"name": "users", "description": "User management, for admins."},
]


def create_app(settings: Settings | None = None) -> FastAPI:
    """The identity-service application of ``settings`` (default: from the environment)."""
    settings = settings or Settings()
    configure_logging("identity", settings.log_level, settings.log_format)
    parts = Components.from_settings(settings)
    # The relay starts before the first admin is created, so its event is published at once.
    hooks: list[Hook] = [
        closing_database,
        statuses_read_on_the_loop,
        *messaging_hooks("identity", parts.db, settings.amqp_url, enabled=settings.messaging_enabled),
        first_admin,
        *service_retention_hooks(
            "identity",
            parts.db,
            settings,
            identity_retention_tasks(
                parts.db,
                parts.throttle,
                refresh_token_days=settings.refresh_token_retention_days,
                refresh_grace_seconds=settings.refresh_reuse_grace_seconds,
            ),
        ),
    ]
    if settings.user_status_cache_enabled:
        hooks.append(listening_for_user_changes)
    app = create_service_app(
        database=parts.db,
        name="identity",
        title="Clinic identity API",
        description="Registration, login, tokens and user management.",
        routers=[api.auth, api.users, api.internal],
        status_of=STATUS_OF,
        token_verifier=parts.verifier,
        readiness={"database": parts.db.ping, "broker": amqp_check(settings.amqp_url)},
        hooks=hooks,
        openapi_tags=OPENAPI_TAGS,
    )
    install_authentication_challenge(app)
    app.state.settings = settings
    app.state.components = parts
    return app


@contextmanager
def closing_database(app: FastAPI) -> Iterator[None]:
    """Release the connection pool at shutdown."""
    try:
        yield
    finally:
        app.state.components.db.dispose()


@contextmanager
def first_admin(app: FastAPI) -> Iterator[None]:
    """Create the admin of ADMIN_EMAIL/ADMIN_PASSWORD at start-up, unless the email is taken.

    Every replica runs this; the insert is ON CONFLICT DO NOTHING, so they cannot race.
    A weak ADMIN_PASSWORD stops the start-up: better than an admin anyone can guess.
    """
    settings: Settings = app.state.settings
    parts: Components = app.state.components
    if settings.admin_email and settings.admin_password:
        admin = NewAdmin(email=settings.admin_email, full_name=settings.admin_full_name)
        try:
            account = services.create_admin(
                parts.db,
                parts.passwords,
                email=admin.email,
                password=settings.admin_password.get_secret_value(),
                full_name=admin.full_name,
            )
        except WeakPassword as exc:
            raise RuntimeError(f"ADMIN_PASSWORD is not acceptable: {exc.detail}") from None
        # Ids, not the email: no personal data in log lines.
        if account.created:
            log.info("created the admin account (user %s) from ADMIN_EMAIL", account.user.id)
        elif account.user.role != ADMIN:
            log.warning(
                "ADMIN_EMAIL belongs to user %s, a %s account; no admin created",
                account.user.id,
                account.user.role,
            )
    yield


@contextmanager
def statuses_read_on_the_loop(app: FastAPI) -> Iterator[None]:
    """The token check reads a user not in its cache on the event loop, not in a thread."""
    parts: Components = app.state.components
    parts.statuses.reads = app.state.reads
    try:
        yield
    finally:
        parts.statuses.reads = None


@contextmanager
def listening_for_user_changes(app: FastAPI) -> Iterator[None]:
    """Keep the token check's user cache fresh while the application runs."""
    parts: Components = app.state.components
    listener = UserStatusListener(parts.statuses, parts.db.url)
    listener.start()
    try:
        yield
    finally:
        listener.stop()
