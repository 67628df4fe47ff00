"""doctor-service application factory: ``uvicorn --factory doctor.main:create_app``."""

from fastapi import FastAPI

from chassis.app import create_service_app
from chassis.db import Database
from chassis.health import amqp_check
from chassis.messaging import messaging_hooks, service_retention_hooks
from chassis.observability import configure_logging
from chassis.trust import ServiceTrust
from doctor import api, events, fhir
from doctor.config import Settings
from doctor.errors import STATUS_OF


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    configure_logging("doctor", settings.log_level, settings.log_format)
    db = Database.from_settings(settings)
    trust = ServiceTrust.from_settings(settings, "doctor", db)
    app = create_service_app(
        database=db,
        name="doctor",
        title="Clinic doctor API",
        description="Doctor profiles: specialty, bio, experience; search and filters.",
        routers=[api.router, fhir.router],
        status_of=STATUS_OF,
        token_verifier=trust.token_verifier,
        readiness={"database": db.ping, "broker": amqp_check(settings.amqp_url), **trust.readiness()},
        # The outbox relay publishes doctor.profile.updated; the consumer applies identity's user
        # events, and records the token revocations among them.
        hooks=[
            trust.hook,
            *messaging_hooks(
                "doctor",
                db,
                settings.amqp_url,
                handlers=events.CONSUMED,
                enabled=settings.messaging_enabled,
                retry_delays=settings.event_retry_delays,
            ),
            *service_retention_hooks("doctor", db, settings),
        ],
        openapi_tags=[{"name": "doctors", "description": "Find doctors; doctors keep their own profile."}],
    )
    app.state.settings = settings
    app.state.trust = trust
    return app
