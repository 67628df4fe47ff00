"""Helpers for services' own tests: mint access tokens that ``TokenVerifier`` accepts.

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

from chassis.auth import InvalidToken, TokenVerifier


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

    def verifier(self) -> TokenVerifier:
        return TokenVerifier(self._key, issuer=self.issuer, audience=self.audience)

    def token(self, user_id: int, role: str, *, ttl: int = 900, **claims: Any) -> str:
        now = int(time.time())
        payload = {
            "sub": str(user_id),
            "role": role,
            "typ": "access",
            "iss": self.issuer,
            "aud": self.audience,
            "iat": now,
            "exp": now + ttl,
            "jti": uuid.uuid4().hex,
            **claims,
        }
        return jwt.encode(payload, self._private, algorithm="EdDSA", headers={"kid": self.kid})

    def headers(self, user_id: int, role: str, **claims: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(user_id, role, **claims)}"}
