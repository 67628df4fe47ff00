"""booking-service settings: the only place its environment is read."""

from pydantic import Field, SecretStr, model_validator

from chassis.service_settings import service_settings
from chassis.settings import read_secret_file


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

    # The waitlist: how long an offer holds its timeslot for one patient (fractions of a
    # minute are allowed, for tests), and how often its worker expires and makes offers.
    waitlist_offer_minutes: float = Field(
        default=15, gt=0, le=1440, validation_alias="WAITLIST_OFFER_MINUTES"
    )
    waitlist_worker_enabled: bool = Field(default=True, validation_alias="WAITLIST_WORKER_ENABLED")
    waitlist_interval_seconds: float = Field(
        default=1.0, gt=0, le=3600, validation_alias="WAITLIST_INTERVAL_SECONDS"
    )

    # Calendar feeds: the key their URLs' secrets derive from (a secret file in deployments;
    # unset, a key drawn once and kept in the database is used, and start-up says so).
    calendar_feed_key: SecretStr | None = Field(default=None, validation_alias="CALENDAR_FEED_KEY")
    calendar_feed_key_file: str | None = Field(default=None, validation_alias="CALENDAR_FEED_KEY_FILE")

    @model_validator(mode="after")
    def _calendar_feed_key_from_file(self) -> "Settings":
        if self.calendar_feed_key is None and self.calendar_feed_key_file:
            self.calendar_feed_key = SecretStr(read_secret_file(self.calendar_feed_key_file))
        return self
