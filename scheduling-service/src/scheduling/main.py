"""scheduling-service application factory: ``uvicorn --factory scheduling.main:create_app``."""

from fastapi import FastAPI

from chassis.app import create_service_app
from chassis.db import Database
from chassis.health import amqp_check
from chassis.messaging import messaging_hooks, service_retention_hooks
from chassis.observability import configure_logging
from chassis.trust import ServiceTrust
from scheduling import api, events
from scheduling.adapters.sweeper import hold_sweeper_hook
from scheduling.config import Settings
from scheduling.errors import STATUS_OF

DESCRIPTION = """Doctors publish their timeslots (one at a time or as a weekly pattern); patients
and admins list a doctor's free ones. Times are RFC 3339; a time without an offset
is read in the clinic time zone, and responses are in UTC."""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    configure_logging("scheduling", settings.log_level, settings.log_format)
    db = Database.from_settings(settings)
    trust = ServiceTrust.from_settings(settings, "scheduling", db, calls=True)
    hooks = [
        trust.hook,
        *messaging_hooks(
            "scheduling",
            db,
            settings.amqp_url,
            handlers=events.CONSUMED,
            enabled=settings.messaging_enabled,
        ),
        *service_retention_hooks("scheduling", db, settings),
    ]
    if settings.hold_sweeper_enabled:
        hooks.append(
            hold_sweeper_hook(
                db,
                booking_url=settings.booking_url,
                timeout=settings.booking_timeout_seconds,
                interval=settings.hold_sweep_interval_seconds,
            )
        )
    app = create_service_app(
        database=db,
        name="scheduling",
        title="Clinic scheduling API",
        description=DESCRIPTION,
        routers=[api.router, api.internal_router],
        status_of=STATUS_OF,
        token_verifier=trust.token_verifier,
        readiness={
            "database": db.ping,
            "broker": amqp_check(settings.amqp_url),
            **trust.readiness("booking"),
        },
        hooks=hooks,
        openapi_tags=[{"name": "timeslots", "description": "Doctors' schedules and free timeslots."}],
    )
    app.state.settings = settings
    app.state.trust = trust
    return app
