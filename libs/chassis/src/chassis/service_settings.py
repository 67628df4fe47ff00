"""The base of every service's ``Settings``: the chassis' settings and the service's own URLs.

    class Settings(service_settings("booking")):
        scheduling_url: str = ...

Least privilege: the service runs as its own role and broker user (``database_url``,
``amqp_url``); migrations run as the schema's owner (``migration_database_url``);
``<service> provision`` creates both with the administrators' URLs (``admin_database_url``).
"""

from __future__ import annotations

from chassis.settings import (
    AuthSettings,
    BaseServiceSettings,
    BrokerSettings,
    admin_database_url_field,
    amqp_url_field,
    database_url_field,
    migration_database_url_field,
)


def service_settings(service: str) -> type[BaseServiceSettings]:
    """A settings class for ``service``, its URLs read from ``<SERVICE>_…`` variables."""

    class ServiceSettings(BaseServiceSettings, BrokerSettings, AuthSettings):
        database_url: str = database_url_field(service)
        migration_database_url: str | None = migration_database_url_field(service)
        admin_database_url: str = admin_database_url_field(service)
        amqp_url: str = amqp_url_field(service)

    ServiceSettings.__name__ = ServiceSettings.__qualname__ = f"{service.capitalize()}ServiceSettings"
    return ServiceSettings
