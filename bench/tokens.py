"""Access tokens for seeded users, minted with the stack's own signing key.

Logging 10,000 users in would cost an argon2 verification each and trip the gateway's
login rate limit; a token minted with identity's private key is exactly what login would
have issued (same claims, same ``kid``), and identity's verify endpoint checks it the
same way: signature, expiry, type, and that the user is active.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import jwt

from identity.adapters.keys import parse_private_key, public_jwk


class Minter:
    def __init__(self, key_file: Path, *, issuer: str, audience: str, ttl: int = 3600) -> None:
        deadline = time.monotonic() + 30
        while not key_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        self.key = parse_private_key(key_file.read_text())
        self.kid = public_jwk(self.key.public_key())["kid"]
        self.issuer = issuer
        self.audience = audience
        self.ttl = ttl
        self._cache: dict[tuple[int, str], str] = {}

    def token(self, user_id: int, role: str) -> str:
        """One token per user (reused across phases, as a logged-in client reuses its token)."""
        key = (user_id, role)
        token = self._cache.get(key)
        if token is None:
            now = int(time.time())
            claims = {
                "iss": self.issuer,
                "aud": self.audience,
                "sub": str(user_id),
                "role": role,
                "typ": "access",
                "sid": str(uuid.uuid4()),
                "iat": now,
                "exp": now + self.ttl,
                "jti": uuid.uuid4().hex,
            }
            token = jwt.encode(claims, self.key, algorithm="EdDSA", headers={"kid": self.kid})
            self._cache[key] = token
        return token
