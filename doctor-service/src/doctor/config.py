"""doctor-service settings: the only place its environment is read."""

from chassis.settings import (
    AuthSettings,
    BaseServiceSettings,
    BrokerSettings,
    admin_database_url_field,
    amqp_url_field,
    database_url_field,
    migration_database_url_field,
)


class Settings(BaseServiceSettings, BrokerSettings, AuthSettings):
    # Least privilege: the service runs as its own role and broker user; migrations run as
    # the schema's owner; ``doctor provision`` creates both with the admin URLs.
    database_url: str = database_url_field("doctor")
    migration_database_url: str | None = migration_database_url_field("doctor")
    admin_database_url: str = admin_database_url_field("doctor")
    amqp_url: str = amqp_url_field("doctor")
