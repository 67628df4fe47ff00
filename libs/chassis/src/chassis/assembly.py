"""The whole app of a service that consumes events: written once, each ``main.py`` names its parts.

Logging, the database, the trust in identity's tokens (and a service credential when the
service calls another's internal API), the outbox relay and the consumer of ``consumed``, the
retention job, readiness (database, broker, token revocations, credentials) and the chassis'
app (``create_service_app``), with ``settings`` and ``trust`` on ``app.state``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from fastapi import APIRouter, FastAPI

from chassis.app import Hook, create_service_app
from chassis.db import Database
from chassis.errors import DomainError
from chassis.health import amqp_check
from chassis.messaging import Handler, messaging_hooks, service_retention_hooks
from chassis.messaging.retention import Task
from chassis.observability import configure_logging
from chassis.trust import ServiceTrust

MoreHooks = Callable[[Any, Database], Sequence[Hook]]


def consuming_service_app(
    name: str,
    settings: Any,
    *,
    title: str,
    description: str,
    routers: Sequence[APIRouter],
    status_of: Mapping[type[DomainError], int],
    consumed: Mapping[str, Handler],
    openapi_tags: list[dict[str, Any]],
    calls: Sequence[str] = (),
    more_hooks: MoreHooks | None = None,
    idempotency: bool = False,
    retention_tasks: Callable[[Database], Mapping[str, Task]] | None = None,
) -> FastAPI:
    """The app of service ``name``: ``calls`` names the services whose internal API it calls (a
    credential for each is part of its readiness); ``more_hooks(settings, db)`` adds the
    service's own start-up hooks (a client of another service, a sweeper); ``idempotency``: the
    service takes Idempotency-Key (``chassis.idempotency``), whose keys its retention job deletes;
    ``retention_tasks(db)``: the service's own tasks for that job."""
    configure_logging(name, settings.log_level, settings.log_format)
    db = Database.from_settings(settings)
    trust = ServiceTrust.from_settings(settings, name, db, calls=bool(calls))
    hooks = [
        trust.hook,
        *messaging_hooks(
            name,
            db,
            settings.amqp_url,
            handlers=consumed,
            enabled=settings.messaging_enabled,
            retry_delays=settings.event_retry_delays,
        ),
        *service_retention_hooks(
            name,
            db,
            settings,
            {
                **(_idempotency_tasks(db) if idempotency else {}),
                **(retention_tasks(db) if retention_tasks else {}),
            },
        ),
        *(more_hooks(settings, db) if more_hooks else ()),
    ]
    app = create_service_app(
        database=db,
        name=name,
        title=title,
        description=description,
        routers=routers,
        status_of=status_of,
        token_verifier=trust.token_verifier,
        readiness={"database": db.ping, "broker": amqp_check(settings.amqp_url), **trust.readiness(*calls)},
        hooks=hooks,
        openapi_tags=openapi_tags,
    )
    app.state.settings = settings
    app.state.trust = trust
    return app


def _idempotency_tasks(db: Database) -> dict[str, Callable[[], int]]:
    # Imported only by the services that take the key: its table joins the shared metadata (and
    # so what a service's migration test expects) only where the service's migration creates it.
    from chassis.idempotency import idempotency_retention_tasks

    return idempotency_retention_tasks(db)
