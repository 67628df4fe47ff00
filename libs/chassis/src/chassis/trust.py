"""How a service (other than identity) decides whom to trust, wired in one place.

- Users: access tokens verified with identity's JWKS and checked against the token
  revocations this service hears by events (``chassis.revocations``).
- Services: service tokens for this service (``aud`` = its name), and, when it calls
  other services, its own credential to get them (``chassis.service_auth``).

In a service's ``main.py``::

    trust = ServiceTrust.from_settings(settings, "booking", db, calls=True)
    app = create_service_app(..., token_verifier=trust.token_verifier,
                             readiness={..., **trust.readiness("scheduling")}, hooks=[trust.hook, ...])
    app.state.trust = trust

``require_service`` and the clients of other services find it there; a service's tests
swap its verifiers and credential for ones over a throw-away key (``TokenMinter.trust``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI

from chassis.auth import TokenVerifier, jwks_keys
from chassis.db import Database
from chassis.health import CREDENTIAL_CHECK_PREFIX, Check
from chassis.revocations import RevocationPoller, TokenRevocations
from chassis.service_auth import ServiceCredentials, ServiceTokenVerifier

log = logging.getLogger("chassis.trust")


class RevocationsNotLoaded(Exception):
    """The token revocations have not been read yet: refusing to judge tokens without them."""


@dataclass(slots=True)
class ServiceTrust:
    service: str
    token_verifier: TokenVerifier
    service_verifier: ServiceTokenVerifier
    poller: RevocationPoller
    # This service's credential for its calls to other services (None: it calls none).
    credentials: ServiceCredentials | Any | None

    @classmethod
    def from_settings(cls, settings: Any, service: str, db: Database, *, calls: bool = False) -> ServiceTrust:
        """``calls``: this service calls other services' internal endpoints (it needs a credential)."""
        keys = jwks_keys(settings)  # one key cache for both verifiers
        revocations = TokenRevocations()
        credentials = None
        if calls:
            credentials = ServiceCredentials(
                settings.identity_url, service, settings.own_service_secret(service) or ""
            )
        return cls(
            service=service,
            token_verifier=TokenVerifier(
                keys, issuer=settings.jwt_issuer, audience=settings.jwt_audience, revocations=revocations
            ),
            service_verifier=ServiceTokenVerifier(keys, issuer=settings.jwt_issuer, service=service),
            poller=RevocationPoller(db, revocations, interval=settings.token_revocation_poll_seconds),
            credentials=credentials,
        )

    @property
    def revocations(self) -> TokenRevocations:
        return self.poller.revocations

    @contextmanager
    def hook(self, _app: FastAPI) -> Iterator[None]:
        """Start-up hook: read the revocations, then keep reading them while the app runs."""
        try:
            self.poller.load()
        except Exception as exc:  # the database is down: not ready until the poller has read them
            log.warning("token revocations not read at start-up: %s", exc.__class__.__name__)
        self.poller.start()
        try:
            yield
        finally:
            self.poller.stop()

    def readiness(self, *audiences: str) -> Mapping[str, Check]:
        """Readiness checks: revocations read; a service token for each service this one calls."""
        checks: dict[str, Check] = {"token_revocations": self._revocations_loaded}
        for audience in audiences:
            checks[f"{CREDENTIAL_CHECK_PREFIX}{audience}"] = self._credential_check(audience)
        return checks

    def _credential_check(self, audience: str) -> Check:
        def check() -> None:
            self.credentials.authorization(audience)  # raises ServiceCredentialUnavailable

        return check

    def _revocations_loaded(self) -> None:
        if not self.poller.loaded:
            raise RevocationsNotLoaded()
