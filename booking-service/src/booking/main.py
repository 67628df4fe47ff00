"""booking-service application factory: ``uvicorn --factory booking.main:create_app``."""

from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import FastAPI

from booking import api, events, fhir
from booking.adapters.retention import booking_retention_tasks
from booking.adapters.scheduling_client import SchedulingClient
from booking.adapters.waitlist_worker import waitlist_worker_hook
from booking.api import calendar as calendar_api
from booking.api import waitlist as waitlist_api
from booking.config import Settings
from booking.errors import STATUS_OF
from booking.services.feeds import FeedKeys
from chassis.app import Hook
from chassis.assembly import consuming_service_app
from chassis.db import Database


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


def waitlist_hooks(db: Database, settings: Settings) -> list[Hook]:
    """The waitlist worker (after the scheduling client, which it uses), unless disabled."""
    if not settings.waitlist_worker_enabled:
        return []
    return [
        waitlist_worker_hook(
            db, offer_minutes=settings.waitlist_offer_minutes, interval=settings.waitlist_interval_seconds
        )
    ]


def create_app(settings: Settings | None = None) -> FastAPI:
    """The booking-service app for ``settings`` (default: from the environment)."""
    settings = settings or Settings()
    app = consuming_service_app(
        "booking",
        settings,
        title="Clinic booking API",
        description="Appointments and their status machine.",
        routers=[api.router, waitlist_api.router, calendar_api.router, fhir.router, api.internal_router],
        status_of=STATUS_OF,
        consumed=events.CONSUMED,
        idempotency=True,
        retention_tasks=booking_retention_tasks,
        calls=["scheduling"],
        more_hooks=lambda settings, db: [scheduling_client_hook(settings), *waitlist_hooks(db, settings)],
        openapi_tags=[
            {"name": "appointments", "description": "Booking timeslots and running appointments."},
            {
                "name": "waitlist",
                "description": "Waiting for a doctor's timeslot; offers held for one patient.",
            },
            {"name": "calendar", "description": "Private iCalendar feeds of one's appointments."},
        ],
    )
    feed_key = settings.calendar_feed_key
    app.state.feed_keys = FeedKeys(app.state.db, feed_key.get_secret_value() if feed_key else None)
    return app
