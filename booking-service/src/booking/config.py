"""booking-service settings: the only place its environment is read."""

from pydantic import Field

from chassis.service_settings import service_settings


class Settings(service_settings("booking")):
    """Everything booking-service reads from its environment (or ``.env``)."""

    # scheduling-service owns timeslots; booking holds and releases them there.
    scheduling_url: str = Field(default="http://127.0.0.1:8003", validation_alias="SCHEDULING_URL")
    # Short on purpose: a patient waits for the hold, and a slow scheduling-service
    # should turn into a quick 503 rather than a hanging request.
    scheduling_timeout_seconds: float = Field(
        default=3.0, gt=0, le=60, validation_alias="SCHEDULING_TIMEOUT_SECONDS"
    )
    scheduling_max_connections: int = Field(default=100, ge=1, validation_alias="SCHEDULING_MAX_CONNECTIONS")
