"""scheduling-service settings: the only place its environment is read."""

from pydantic import Field

from chassis.service_settings import service_settings


class Settings(service_settings("scheduling")):
    """Everything scheduling-service reads from its environment (or ``.env``)."""

    # How long a hold waits for booking's `booked` event before the sweeper asks booking.
    hold_seconds: int = Field(default=30, ge=1, le=3600, validation_alias="HOLD_SECONDS")
    hold_sweeper_enabled: bool = Field(default=True, validation_alias="HOLD_SWEEPER_ENABLED")
    hold_sweep_interval_seconds: float = Field(
        default=5.0, gt=0, le=3600, validation_alias="HOLD_SWEEP_INTERVAL_SECONDS"
    )
    # booking-service's internal reservation lookup (never routed by the gateway).
    booking_url: str = Field(default="http://127.0.0.1:8004", validation_alias="BOOKING_URL")
    # Short: the sweeper holds one row lock while it asks.
    booking_timeout_seconds: float = Field(
        default=2.0, gt=0, le=30, validation_alias="BOOKING_TIMEOUT_SECONDS"
    )
