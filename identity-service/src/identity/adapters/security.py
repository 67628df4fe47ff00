"""Password hashing (Argon2id) and token issuance (EdDSA access tokens, opaque refresh tokens)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from chassis.auth import ACCESS_TOKEN_TYPE
from chassis.service_auth import SERVICE_TOKEN_TYPE
from identity.adapters.keys import ALGORITHM, KeyRing
from identity.config import Settings


class Passwords:
    """Argon2id hashing with the configured cost; old hashes are upgraded at the next login."""

    def __init__(self, *, time_cost: int, memory_cost: int, parallelism: int, concurrency: int = 2) -> None:
        self._hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism)
        # Each Argon2 computation holds ``memory_cost`` KiB; without a bound, a burst of
        # logins on the 40-thread pool would take gigabytes. More parallel hashes than
        # cores buys no throughput anyway: the rest wait here.
        self._slots = threading.BoundedSemaphore(concurrency)
        # Verified against when the account does not exist, so that an unknown email
        # costs as much time as a wrong password and timing does not reveal accounts.
        self._decoy_hash = self._hasher.hash(secrets.token_urlsafe(16))

    @classmethod
    def from_settings(cls, settings: Settings) -> Passwords:
        return cls(
            time_cost=settings.password_hash_time_cost,
            memory_cost=settings.password_hash_memory_cost,
            parallelism=settings.password_hash_parallelism,
            concurrency=settings.password_hash_concurrency,
        )

    def hash(self, password: str) -> str:
        """A new salted hash of ``password``."""
        with self._slots:
            return self._hasher.hash(password)

    def verify(self, password_hash: str, password: str) -> bool:
        """Whether ``password`` matches ``password_hash`` (False for a corrupt hash too)."""
        try:
            with self._slots:
                return self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    def verify_decoy(self, password: str) -> None:
        """Spend the time of one verification, for an account that does not exist."""
        self.verify(self._decoy_hash, password)

    def needs_rehash(self, password_hash: str) -> bool:
        """Whether ``password_hash`` was made with other parameters than the current ones."""
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except InvalidHashError:
            return True


@dataclass(frozen=True, slots=True)
class IssuedTokens:
    """An access token, its lifetime, and the refresh token issued with it."""

    access: str
    refresh: str
    expires_in: int


def new_refresh_token() -> str:
    """An opaque refresh token: 256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def refresh_token_digest(token: str) -> bytes:
    """What the database keeps of a refresh token: its SHA-256.

    A fast hash is right here: the token is random and long, so nothing can be guessed
    from a leaked digest, and lookups stay a single index probe.
    """
    return hashlib.sha256(token.encode("utf-8")).digest()


def seal_successor(presented: str, successor: str) -> bytes:
    """``successor`` encrypted under a key only the holder of ``presented`` can derive.

    Kept on the presented token's row for the refresh grace period, so that a concurrent
    refresh with the same token can be given the same successor. The database holds only the
    presented token's SHA-256, and the key is another hash of it (domain-separated), so what
    the database holds does not open it.
    """
    nonce = secrets.token_bytes(12)
    return nonce + AESGCM(_sealing_key(presented)).encrypt(nonce, successor.encode(), None)


def open_successor(presented: str, sealed: bytes) -> str | None:
    """The successor ``seal_successor`` sealed with ``presented``; None if it does not open."""
    try:
        return AESGCM(_sealing_key(presented)).decrypt(sealed[:12], sealed[12:], None).decode()
    except (InvalidTag, ValueError):
        return None


def _sealing_key(presented: str) -> bytes:
    return hashlib.sha256(b"clinic refresh successor\x00" + presented.encode("utf-8")).digest()


class TokenIssuer:
    """Signs access tokens with identity's current key and dates refresh tokens."""

    def __init__(
        self,
        keys: KeyRing,
        *,
        issuer: str,
        audience: str,
        access_ttl: int,
        refresh_ttl: int,
        session_max_age: int = 30 * 24 * 3600,
        service_ttl: int = 300,
        reuse_grace: float = 10.0,
    ) -> None:
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        self.access_ttl = access_ttl
        self.refresh_ttl = timedelta(seconds=refresh_ttl)
        self.session_max_age = timedelta(seconds=session_max_age)
        self.service_ttl = service_ttl
        self.reuse_grace = timedelta(seconds=reuse_grace)

    @classmethod
    def from_settings(cls, keys: KeyRing, settings: Settings) -> TokenIssuer:
        return cls(
            keys,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            access_ttl=settings.access_token_ttl_seconds,
            refresh_ttl=settings.refresh_token_ttl_seconds,
            session_max_age=settings.session_max_age_seconds,
            service_ttl=settings.service_token_ttl_seconds,
            reuse_grace=settings.refresh_reuse_grace_seconds,
        )

    def access_token(self, *, user_id: int, role: str, session_id: uuid.UUID, now: datetime) -> str:
        """A signed access token of ``user_id`` in session (refresh-token family) ``session_id``.

        ``iat`` keeps milliseconds (a NumericDate may be fractional, RFC 7519 §2): services
        compare it with the time of a role change or a deactivation, and a login in the same
        second just after one must not be taken for a token from before it.
        """
        issued_at = round(now.timestamp(), 3)
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": str(user_id),
            "role": role,
            "typ": ACCESS_TOKEN_TYPE,
            "sid": str(session_id),
            "iat": issued_at,
            "exp": int(issued_at) + self.access_ttl,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self.keys.signing_key, algorithm=ALGORITHM, headers={"kid": self.keys.kid})

    def service_token(self, *, client: str, audience: str, now: datetime) -> str:
        """A signed service token: ``client`` may call ``audience``'s internal endpoints."""
        issued_at = int(now.timestamp())
        claims = {
            "iss": self.issuer,
            "aud": audience,
            "sub": client,
            "typ": SERVICE_TOKEN_TYPE,
            "iat": issued_at,
            "exp": issued_at + self.service_ttl,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self.keys.signing_key, algorithm=ALGORITHM, headers={"kid": self.keys.kid})

    def session_expiry(self, started_at: datetime) -> datetime:
        """When a session started at ``started_at`` ends at the latest (refreshing does not extend it)."""
        return started_at + self.session_max_age

    def refresh_expiry(self, now: datetime, session_expires_at: datetime) -> datetime:
        """When a refresh token issued ``now`` stops working: its lifetime, within its session's."""
        return min(now + self.refresh_ttl, session_expires_at)


def service_client_authenticated(clients: dict[str, str], client_id: str, secret: str) -> bool:
    """Whether ``secret`` is the client secret of service ``client_id`` (constant-time)."""
    expected = clients.get(client_id)
    # Compared even for an unknown client, so the answer's timing does not tell which exist.
    matches = hmac.compare_digest((expected or "\0" * 43).encode("utf-8"), secret.encode("utf-8"))
    return expected is not None and matches
