"""booking-service application factory: ``uvicorn --factory booking.main:create_app``."""

from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import FastAPI

from booking import api, events, fhir
from booking.adapters.scheduling_client import SchedulingClient
from booking.config import Settings
from booking.errors import STATUS_OF
from chassis.app import Hook
from chassis.assembly import consuming_service_app


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
    return consuming_service_app(
        "booking",
        settings,
        title="Clinic booking API",
        description="Appointments and their status machine.",
        routers=[api.router, fhir.router, api.internal_router],
        status_of=STATUS_OF,
        consumed=events.CONSUMED,
        idempotency=True,
        calls=["scheduling"],
        more_hooks=lambda settings, db: [scheduling_client_hook(settings)],
        openapi_tags=[{"name": "appointments", "description": "Booking timeslots and running appointments."}],
    )
