"""doctor-service application factory: ``uvicorn --factory doctor.main:create_app``."""

from fastapi import FastAPI

from chassis.assembly import consuming_service_app
from doctor import api, events, fhir
from doctor.config import Settings
from doctor.errors import STATUS_OF


def create_app(settings: Settings | None = None) -> FastAPI:
    """The doctor-service app: the outbox relay publishes doctor.profile.updated; the consumer
    applies identity's user events, and records the token revocations among them."""
    settings = settings or Settings()
    return consuming_service_app(
        "doctor",
        settings,
        title="Clinic doctor API",
        description="Doctor profiles: specialty, bio, experience; search and filters.",
        routers=[api.router, fhir.router],
        status_of=STATUS_OF,
        consumed=events.CONSUMED,
        openapi_tags=[{"name": "doctors", "description": "Find doctors; doctors keep their own profile."}],
    )
