"""booking-service application factory: ``uvicorn --factory booking.main:create_app``."""

from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import FastAPI

from booking import api, events
from booking.adapters.scheduling_client import SchedulingClient
from booking.calendar import api as calendar_api
from booking.calendar.errors import STATUS_OF as CALENDAR_STATUS_OF
from booking.calendar.feeds import FeedKeys
from booking.config import Settings
from booking.errors import STATUS_OF
from booking.waitlist import api as waitlist_api
from booking.waitlist.errors import STATUS_OF as WAITLIST_STATUS_OF
from booking.waitlist.worker import waitlist_worker_hook
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
    configure_logging("booking", settings.log_level, settings.log_format)
    db = Database.from_settings(settings)
    trust = ServiceTrust.from_settings(settings, "booking", db, calls=True)
    hooks = [
        trust.hook,
        scheduling_client_hook(settings),
        *waitlist_hooks(db, settings),
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
        routers=[api.router, waitlist_api.router, calendar_api.router, api.internal_router],
        status_of={**STATUS_OF, **WAITLIST_STATUS_OF, **CALENDAR_STATUS_OF},
        token_verifier=trust.token_verifier,
        readiness={
            "database": db.ping,
            "broker": amqp_check(settings.amqp_url),
            **trust.readiness("scheduling"),
        },
        hooks=hooks,
        openapi_tags=[
            {"name": "appointments", "description": "Booking timeslots and running appointments."},
            {
                "name": "waitlist",
                "description": "Waiting for a doctor's timeslot; offers held for one patient.",
            },
            {"name": "calendar", "description": "Private iCalendar feeds of one's appointments."},
        ],
    )
    app.state.settings = settings
    app.state.trust = trust
    feed_key = settings.calendar_feed_key
    app.state.feed_keys = FeedKeys(db, feed_key.get_secret_value() if feed_key else None)
    return app
