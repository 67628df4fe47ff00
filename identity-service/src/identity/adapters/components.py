"""The parts of identity-service that requests share, built once per application."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from chassis.db import Database
from chassis.service_auth import client_secrets
from identity.adapters.keys import KeyRing, load_key_ring
from identity.adapters.security import Passwords, TokenIssuer
from identity.adapters.throttle import LoginThrottle
from identity.adapters.token_verifier import ActiveUserTokenVerifier
from identity.adapters.user_statuses import UserStatuses
from identity.config import Settings


@dataclass(frozen=True, slots=True)
class Components:
    db: Database
    keys: KeyRing
    passwords: Passwords
    tokens: TokenIssuer
    statuses: UserStatuses
    verifier: ActiveUserTokenVerifier
    # The services that may ask for service tokens, and their client secrets.
    service_clients: dict[str, str]
    throttle: LoginThrottle
    trusted_proxy_count: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Components:
        """Everything wired from ``settings``: database, keys, hashing, token issuer and verifier."""
        db = Database.from_settings(settings)
        keys = load_key_ring(settings)
        statuses = UserStatuses(
            db.engine,
            ttl=settings.user_status_cache_ttl_seconds,
            max_entries=settings.user_status_cache_size,
            access_token_ttl=settings.access_token_ttl_seconds,
        )
        return cls(
            db=db,
            keys=keys,
            passwords=Passwords.from_settings(settings),
            tokens=TokenIssuer.from_settings(keys, settings),
            statuses=statuses,
            # Identity checks tokens against its own key ring, not its JWKS over HTTP.
            verifier=ActiveUserTokenVerifier(
                keys, issuer=settings.jwt_issuer, audience=settings.jwt_audience, statuses=statuses
            ),
            service_clients=client_secrets(
                settings.service_secrets_dir,
                settings.service_clients,
                None
                if settings.service_client_secrets is None
                else settings.service_client_secrets.get_secret_value(),
            ),
            throttle=LoginThrottle(
                window_seconds=settings.login_throttle_window_seconds,
                account_failures=settings.login_throttle_account_failures,
                address_failures=settings.login_throttle_address_failures,
                ipv6_prefix=settings.login_throttle_ipv6_prefix,
            ),
            trusted_proxy_count=settings.trusted_proxy_count,
        )


async def components(request: Request) -> Components:
    """FastAPI dependency: the application's components."""
    return request.app.state.components


AppComponents = Annotated[Components, Depends(components)]
