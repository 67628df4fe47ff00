"""scheduling-service application factory: ``uvicorn --factory scheduling.main:create_app``."""

from fastapi import FastAPI

from chassis.app import Hook
from chassis.assembly import consuming_service_app
from chassis.db import Database
from scheduling import api, events, fhir
from scheduling.adapters.retention import scheduling_retention_tasks
from scheduling.adapters.sweeper import hold_sweeper_hook
from scheduling.config import Settings
from scheduling.errors import STATUS_OF

DESCRIPTION = """Doctors publish their timeslots (one at a time or as a weekly pattern); patients
and admins list a doctor's free ones. Times are RFC 3339; a time without an offset
is read in the clinic time zone, and responses are in UTC."""


def create_app(settings: Settings | None = None) -> FastAPI:
    """The scheduling-service app for ``settings`` (default: from the environment)."""
    settings = settings or Settings()
    return consuming_service_app(
        "scheduling",
        settings,
        title="Clinic scheduling API",
        description=DESCRIPTION,
        routers=[api.router, fhir.router, api.internal_router],
        status_of=STATUS_OF,
        consumed=events.CONSUMED,
        idempotency=True,
        retention_tasks=lambda db: scheduling_retention_tasks(db, inbox_days=settings.inbox_retention_days),
        calls=["booking"],
        more_hooks=_sweeper,
        openapi_tags=[{"name": "timeslots", "description": "Doctors' schedules and free timeslots."}],
    )


def _sweeper(settings: Settings, db: Database) -> list[Hook]:
    if not settings.hold_sweeper_enabled:
        return []
    return [
        hold_sweeper_hook(
            db,
            booking_url=settings.booking_url,
            timeout=settings.booking_timeout_seconds,
            interval=settings.hold_sweep_interval_seconds,
        )
    ]
