"""identity-service application factory: ``uvicorn --factory identity.main:create_app``."""

from fastapi import FastAPI

from chassis.app import create_service_app
from chassis.auth import jwks_verifier
from chassis.db import Database
from chassis.health import amqp_check
from chassis.observability import configure_logging
from identity import api
from identity.config import Settings
from identity.errors import STATUS_OF


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    configure_logging("identity", settings.log_level, settings.log_format)
    db = Database.from_settings(settings)
    app = create_service_app(
        name="identity",
        title="Clinic identity API",
        description="Registration, login, tokens and user management.",
        routers=[api.router],
        status_of=STATUS_OF,
        token_verifier=jwks_verifier(settings),
        readiness={"database": db.ping, "broker": amqp_check(settings.amqp_url)},
    )
    app.state.settings = settings
    app.state.db = db
    return app
