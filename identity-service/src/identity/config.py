"""identity-service settings: the only place its environment is read."""

import os

from pydantic import Field, SecretStr, field_validator

from chassis.service_settings import service_settings


class Settings(service_settings("identity")):
    """Everything identity-service reads from its environment (or ``.env``)."""

    # Signing keys. With neither variable set an ephemeral key is generated: fine for one
    # process, wrong for replicas (each would sign with its own key).
    jwt_private_key: SecretStr | None = Field(default=None, validation_alias="JWT_PRIVATE_KEY")
    jwt_private_key_file: str | None = Field(default=None, validation_alias="JWT_PRIVATE_KEY_FILE")
    jwt_previous_public_keys_file: str | None = Field(
        default=None, validation_alias="JWT_PREVIOUS_PUBLIC_KEYS_FILE"
    )

    @field_validator(
        "jwt_private_key", "jwt_private_key_file", "jwt_previous_public_keys_file", mode="before"
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        """A blank key or path (``JWT_PRIVATE_KEY=`` in .env or compose) is no key: the next
        source applies, as if the variable were not set at all."""
        if isinstance(value, str) and not value.strip():
            return None
        if isinstance(value, SecretStr) and not value.get_secret_value().strip():
            return None
        return value

    # At most a day: the other services keep token revocations for a day (chassis.revocations).
    access_token_ttl_seconds: int = Field(
        default=900, ge=30, le=86_400, validation_alias="ACCESS_TOKEN_TTL_SECONDS"
    )
    refresh_token_ttl_seconds: int = Field(
        default=14 * 24 * 3600, ge=60, validation_alias="REFRESH_TOKEN_TTL_SECONDS"
    )
    # A refresh token presented again this soon after its rotation, while its successor is
    # still unused, gets that same successor (two tabs refreshing at once) instead of being
    # taken for a stolen token; 0 turns the grace off.
    refresh_reuse_grace_seconds: float = Field(
        default=10.0, ge=0, le=300, validation_alias="REFRESH_REUSE_GRACE_SECONDS"
    )
    # The refresh tokens of a session are deleted this long after the session ended (every
    # token revoked or expired): adapters/retention.py.
    refresh_token_retention_days: float = Field(
        default=30.0, gt=0, validation_alias="REFRESH_TOKEN_RETENTION_DAYS"
    )

    # A session's absolute lifetime: refreshing never extends a login past it.
    session_max_age_seconds: int = Field(
        default=30 * 24 * 3600, ge=60, validation_alias="SESSION_MAX_AGE_SECONDS"
    )

    # Service-to-service credentials (chassis.service_auth): the services that may ask for a
    # service token, each with its secret in SERVICE_SECRETS_DIR/<name> (or SERVICE_CLIENT_SECRETS,
    # a JSON object {"booking": "..."}, on top), and how long a service token lives.
    service_clients: tuple[str, ...] = Field(
        default=("doctor", "scheduling", "booking"), validation_alias="SERVICE_CLIENTS"
    )
    service_client_secrets: SecretStr | None = Field(default=None, validation_alias="SERVICE_CLIENT_SECRETS")
    service_token_ttl_seconds: int = Field(
        default=300, ge=30, le=3600, validation_alias="SERVICE_TOKEN_TTL_SECONDS"
    )

    # The first admin, created at start-up when both are set and the email is free.
    admin_email: str | None = Field(default=None, validation_alias="ADMIN_EMAIL")
    admin_password: SecretStr | None = Field(default=None, validation_alias="ADMIN_PASSWORD")
    admin_full_name: str = Field(default="Administrator", validation_alias="ADMIN_FULL_NAME")

    # Argon2id cost: OWASP's recommended profile (19 MiB, 2 passes, 1 lane). It keeps a
    # login burst within the service's memory budget (argon2-cffi's default of 64 MiB per
    # hash would not); raise it on machines with memory to spare. Tests lower it.
    password_hash_time_cost: int = Field(default=2, ge=1, validation_alias="PASSWORD_HASH_TIME_COST")
    password_hash_memory_cost: int = Field(
        default=19 * 1024, ge=8, validation_alias="PASSWORD_HASH_MEMORY_COST"
    )
    password_hash_parallelism: int = Field(default=1, ge=1, validation_alias="PASSWORD_HASH_PARALLELISM")
    # How many hashes run at once in one process (the rest queue): bounds memory to
    # concurrency × memory cost. Default: the machine's cores.
    password_hash_concurrency: int = Field(
        default_factory=lambda: os.cpu_count() or 2, ge=1, validation_alias="PASSWORD_HASH_CONCURRENCY"
    )

    # Login throttling (spec/API.md "Authentication"): failed logins (and wrong current
    # passwords) within the window, per account and per client address (IPv6 by its /64).
    login_throttle_window_seconds: float = Field(
        default=900.0, gt=0, validation_alias="LOGIN_THROTTLE_WINDOW_SECONDS"
    )
    login_throttle_account_failures: int = Field(
        default=5, ge=1, le=10, validation_alias="LOGIN_THROTTLE_ACCOUNT_FAILURES"
    )
    login_throttle_address_failures: int = Field(
        default=100, ge=1, validation_alias="LOGIN_THROTTLE_ADDRESS_FAILURES"
    )
    login_throttle_ipv6_prefix: int = Field(
        default=64, ge=1, le=128, validation_alias="LOGIN_THROTTLE_IPV6_PREFIX"
    )
    # How many proxies in front of identity append to X-Forwarded-For (the gateway: 1). The
    # client address is that many entries from its end; 0 uses the connection's address. Only
    # the gateway may reach identity's port, or a caller could name any address it likes.
    trusted_proxy_count: int = Field(default=1, ge=0, validation_alias="TRUSTED_PROXY_COUNT")

    # The in-process cache of (user id -> active, role) behind the gateway's token check,
    # invalidated through PostgreSQL LISTEN/NOTIFY; the TTL only bounds a missed notification.
    user_status_cache_enabled: bool = Field(default=True, validation_alias="USER_STATUS_CACHE_ENABLED")
    user_status_cache_ttl_seconds: float = Field(
        default=300.0, gt=0, validation_alias="USER_STATUS_CACHE_TTL_SECONDS"
    )
    user_status_cache_size: int = Field(default=100_000, ge=1, validation_alias="USER_STATUS_CACHE_SIZE")
