"""The docs app's settings: where the services are, how long the merged document is kept."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

SERVICES = ("identity", "doctor", "scheduling", "booking", "notification")
DEFAULT_URLS = {
    "identity": "http://127.0.0.1:8001",
    "doctor": "http://127.0.0.1:8002",
    "scheduling": "http://127.0.0.1:8003",
    "booking": "http://127.0.0.1:8004",
    "notification": "http://127.0.0.1:8006",
}


class Settings(BaseSettings):
    """Read from the environment (and ``.env``), with the names every Clinic process uses.

    Each service's document is asked of ``<NAME>_URL``, then of each replica in ``<NAME>_URLS``
    (comma-separated) until one answers; with neither set, of the service's local default port.
    """

    model_config = SettingsConfigDict(env_file=".env", env_ignore_empty=True, extra="ignore")

    log_level: str = Field(default="INFO", validation_alias="LOG_LEVEL")
    log_format: str = Field(default="json", validation_alias="LOG_FORMAT")
    identity_url: str = Field(default="", validation_alias="IDENTITY_URL")
    identity_urls: str = Field(default="", validation_alias="IDENTITY_URLS")
    doctor_url: str = Field(default="", validation_alias="DOCTOR_URL")
    doctor_urls: str = Field(default="", validation_alias="DOCTOR_URLS")
    scheduling_url: str = Field(default="", validation_alias="SCHEDULING_URL")
    scheduling_urls: str = Field(default="", validation_alias="SCHEDULING_URLS")
    booking_url: str = Field(default="", validation_alias="BOOKING_URL")
    booking_urls: str = Field(default="", validation_alias="BOOKING_URLS")
    notification_url: str = Field(default="", validation_alias="NOTIFICATION_URL")
    notification_urls: str = Field(default="", validation_alias="NOTIFICATION_URLS")
    # How long a merged document is served before the services are asked again; one that
    # misses a service is kept for at most the shorter time, so it heals quickly.
    cache_ttl_seconds: float = Field(default=15.0, ge=0, validation_alias="DOCS_CACHE_TTL_SECONDS")
    partial_cache_ttl_seconds: float = Field(
        default=2.0, ge=0, validation_alias="DOCS_PARTIAL_CACHE_TTL_SECONDS"
    )
    fetch_timeout_seconds: float = Field(default=3.0, gt=0, validation_alias="DOCS_FETCH_TIMEOUT_SECONDS")
    # The gateway's setting (docs/security.md, CORS): the FHIR CapabilityStatement says whether
    # browsers on other origins may call the API (``rest[0].security.cors``).
    cors_allowed_origins: str = Field(default="", validation_alias="CORS_ALLOWED_ORIGINS")

    @property
    def cors_enabled(self) -> bool:
        return any(origin.strip() for origin in self.cors_allowed_origins.split(","))

    def service_urls(self) -> dict[str, list[str]]:
        """Each service's base URLs, in the order they are tried."""
        urls = {}
        for service in SERVICES:
            listed = f"{getattr(self, f'{service}_url')},{getattr(self, f'{service}_urls')}"
            found = [url.strip().rstrip("/") for url in listed.split(",") if url.strip()]
            urls[service] = list(dict.fromkeys(found)) or [DEFAULT_URLS[service]]
        return urls
