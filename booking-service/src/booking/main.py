"""booking-service application factory: ``uvicorn --factory booking.main:create_app``."""

from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import FastAPI

from booking import api, events, fhir
from booking.adapters.scheduling_client import SchedulingClient
from booking.config import Settings
from booking.errors import STATUS_OF
from chassis.app import Hook, create_service_app
from chassis.db import Database
from chassis.health import amqp_check
from chassis.messaging import messaging_hooks, service_retention_hooks
from chassis.observability import configure_logging
from chassis.trust import ServiceTrust


def scheduling_client_hook(settings: Settings) -> Hook:
    """One pooled HTTP client to scheduling-service per app, closed at shutdown."""

    @contextmanager
    def run(app: FastAPI) -> Iterator[SchedulingClient]:
        client = SchedulingClient(
            settings.scheduling_url,
            credentials=app.state.trust.credentials,
            timeout=settings.scheduling_timeout_seconds,
            max_connections=settings.scheduling_max_connections,
        )
        app.state.scheduling = client
        try:
            yield client
        finally:
            client.close()

    return run


def create_app(settings: Settings | None = None) -> FastAPI:
    """The booking-service app for ``settings`` (default: from the environment)."""
    settings = settings or Settings()
    configure_logging("booking", settings.log_level, settings.log_format)
    db = Database.from_settings(settings)
    trust = ServiceTrust.from_settings(settings, "booking", db, calls=True)
    hooks = [
        trust.hook,
        scheduling_client_hook(settings),
        *messaging_hooks(
            "booking",
            db,
            settings.amqp_url,
            handlers=events.CONSUMED,
            enabled=settings.messaging_enabled,
        ),
        *service_retention_hooks("booking", db, settings),
    ]
    app = create_service_app(
        database=db,
        name="booking",
        title="Clinic booking API",
        description="Appointments and their status machine.",
        routers=[api.router, fhir.router, api.internal_router],
        status_of=STATUS_OF,
        token_verifier=trust.token_verifier,
        readiness={
            "database": db.ping,
            "broker": amqp_check(settings.amqp_url),
            **trust.readiness("scheduling"),
        },
        hooks=hooks,
        openapi_tags=[{"name": "appointments", "description": "Booking timeslots and running appointments."}],
    )
    app.state.settings = settings
    app.state.trust = trust
    return app
