"""Tokens of a test run: access and service tokens that the app under test accepts.

A service's tests run it without identity-service; they sign tokens with a
throw-away Ed25519 key and give the app a verifier over that key::

    minter = TokenMinter()
    app.state.token_verifier = minter.verifier()
    client.get("/api/doctors/", headers=minter.headers(user_id=7, role="patient"))
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from chassis.auth import InvalidToken, RevocationList, TokenVerifier
from chassis.service_auth import SERVICE_TOKEN_TYPE, ServiceTokenVerifier


class TokenMinter:
    def __init__(self, *, issuer: str = "clinic-identity", audience: str = "clinic") -> None:
        self.issuer = issuer
        self.audience = audience
        self.kid = uuid.uuid4().hex
        self._private = Ed25519PrivateKey.generate()

    def _key(self, kid: str) -> Any:
        if kid != self.kid:
            raise InvalidToken("unknown signing key")
        return self._private.public_key()

    def verifier(self, revocations: RevocationList | None = None) -> TokenVerifier:
        return TokenVerifier(self._key, issuer=self.issuer, audience=self.audience, revocations=revocations)

    def trust(self, app: Any, service: str) -> None:
        """Make ``app`` (built by its ``create_app``, not started yet) trust this minter instead of
        identity: its users' tokens (still checked against the app's token revocations), its
        service tokens, and its own service credential signed here."""
        trust = app.state.trust
        app.state.token_verifier = self.verifier(trust.revocations)
        trust.service_verifier = self.service_verifier(service)
        if trust.credentials is not None:
            trust.credentials = self.service_credentials(service)

    def service_verifier(self, service: str) -> ServiceTokenVerifier:
        """A verifier of service tokens for ``service`` (``app.state.service_verifier``)."""
        return ServiceTokenVerifier(self._key, issuer=self.issuer, service=service)

    def service_token(self, client: str, audience: str, *, ttl: int = 300) -> str:
        """A service token: ``client`` calling ``audience``, as identity would sign it."""
        now = int(time.time())
        payload = {
            "sub": client,
            "typ": SERVICE_TOKEN_TYPE,
            "iss": self.issuer,
            "aud": audience,
            "iat": now,
            "exp": now + ttl,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(payload, self._private, algorithm="EdDSA", headers={"kid": self.kid})

    def service_credentials(self, client: str) -> MintedServiceCredentials:
        """What a calling service's ``ServiceCredentials`` gives, signed here instead of by identity."""
        return MintedServiceCredentials(self, client)

    def token(self, user_id: int, role: str, *, ttl: int = 900, **claims: Any) -> str:
        now = round(time.time(), 3)  # milliseconds, like identity's
        payload = {
            "sub": str(user_id),
            "role": role,
            "typ": "access",
            "iss": self.issuer,
            "aud": self.audience,
            "iat": now,
            "exp": int(now) + ttl,
            "jti": uuid.uuid4().hex,
            **claims,
        }
        return jwt.encode(payload, self._private, algorithm="EdDSA", headers={"kid": self.kid})

    def headers(self, user_id: int, role: str, **claims: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(user_id, role, **claims)}"}


class MintedServiceCredentials:
    """``ServiceCredentials`` of a service's tests: tokens from a ``TokenMinter``, no identity."""

    def __init__(self, minter: TokenMinter, client: str) -> None:
        self.minter = minter
        self.client = client

    def authorization(self, audience: str) -> str:
        return f"Bearer {self.minter.service_token(self.client, audience)}"
