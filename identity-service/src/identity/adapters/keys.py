"""Signing keys: loading or generating identity's Ed25519 key, and the public JWKS.

Only identity holds the private key. Every service (identity included) verifies
access tokens with the public keys; a token names its key with ``kid``, the RFC 7638
thumbprint of the public JWK, so the same key always has the same ``kid``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from chassis.auth import InvalidToken
from identity.config import Settings

log = logging.getLogger("identity.keys")

ALGORITHM = "EdDSA"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def public_jwk(public_key: Ed25519PublicKey) -> dict[str, str]:
    """The public JWK of ``public_key`` with its ``kid``, ``alg`` and ``use``."""
    x = _b64url(public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))
    return {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": thumbprint(x), "alg": ALGORITHM, "use": "sig"}


def thumbprint(x: str) -> str:
    """RFC 7638 JWK thumbprint (SHA-256) of an Ed25519 public key given as its ``x`` member."""
    # The required members of an OKP key, in lexicographic order, without whitespace.
    canonical = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": x}, separators=(",", ":"), sort_keys=True)
    return _b64url(hashlib.sha256(canonical.encode("ascii")).digest())


@dataclass(frozen=True, slots=True)
class KeyRing:
    """The key identity signs with, and every public key its tokens may carry.

    Calling a key ring with a ``kid`` gives that public key: it is the key lookup of
    ``chassis.auth.TokenVerifier``, so identity verifies against its own keys rather
    than fetching its own JWKS over HTTP.
    """

    signing_key: Ed25519PrivateKey
    kid: str
    public_keys: dict[str, Ed25519PublicKey]

    @classmethod
    def of(cls, signing_key: Ed25519PrivateKey, previous: Sequence[Ed25519PublicKey] = ()) -> KeyRing:
        """A ring signing with ``signing_key`` that still accepts tokens of ``previous`` keys."""
        public_keys = {public_jwk(key)["kid"]: key for key in previous}
        current = signing_key.public_key()
        kid = public_jwk(current)["kid"]
        public_keys[kid] = current
        return cls(signing_key=signing_key, kid=kid, public_keys=public_keys)

    def __call__(self, kid: str) -> Ed25519PublicKey:
        key = self.public_keys.get(kid)
        if key is None:
            raise InvalidToken("unknown signing key")
        return key

    def jwks(self) -> dict[str, list[dict[str, Any]]]:
        """The JSON Web Key Set of every accepted public key, current key first."""
        ordered = [self.public_keys[self.kid]] + [k for kid, k in self.public_keys.items() if kid != self.kid]
        return {"keys": [public_jwk(key) for key in ordered]}


def load_key_ring(settings: Settings) -> KeyRing:
    """The key ring of ``settings``: JWT_PRIVATE_KEY, else JWT_PRIVATE_KEY_FILE, else ephemeral."""
    if settings.jwt_private_key is not None and settings.jwt_private_key.get_secret_value().strip():
        signing_key = parse_private_key(settings.jwt_private_key.get_secret_value().replace("\\n", "\n"))
    elif settings.jwt_private_key_file:
        signing_key = load_or_create_private_key(Path(settings.jwt_private_key_file))
    else:
        log.warning(
            "neither JWT_PRIVATE_KEY nor JWT_PRIVATE_KEY_FILE is set: signing with an ephemeral key. "
            "Tokens die with this process and replicas will not accept each other's tokens."
        )
        signing_key = Ed25519PrivateKey.generate()
    previous: list[Ed25519PublicKey] = []
    if settings.jwt_previous_public_keys_file:
        previous = parse_public_keys(Path(settings.jwt_previous_public_keys_file).read_text())
    return KeyRing.of(signing_key, previous)


def parse_private_key(pem: str) -> Ed25519PrivateKey:
    """An Ed25519 private key from PEM (PKCS#8), or a clear error for any other key."""
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("the JWT private key must be an Ed25519 key (openssl genpkey -algorithm ed25519)")
    return key


def parse_public_keys(pem_bundle: str) -> list[Ed25519PublicKey]:
    """Every Ed25519 public key in a file of concatenated PEM blocks."""
    marker = "-----END PUBLIC KEY-----"
    keys = []
    for block in pem_bundle.split(marker)[:-1]:
        key = serialization.load_pem_public_key((block.strip() + "\n" + marker + "\n").encode())
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("previous JWT public keys must be Ed25519 keys")
        keys.append(key)
    return keys


def private_key_pem(key: Ed25519PrivateKey) -> bytes:
    """``key`` as unencrypted PKCS#8 PEM."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def load_or_create_private_key(path: Path) -> Ed25519PrivateKey:
    """The key in ``path``; when the file does not exist, a new key written there (mode 0600).

    Safe when several replicas start at once on a shared volume: each writes a complete
    temporary file and hard-links it into place, which fails if the file exists. The
    loser reads the winner's key, so a reader never sees a half-written file and every
    replica ends up with the same key.
    """
    if path.exists():
        return parse_private_key(path.read_text())
    path.parent.mkdir(parents=True, exist_ok=True)
    candidate = Ed25519PrivateKey.generate()
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(private_key_pem(candidate))
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            log.info("another process created the JWT private key %s first; using its key", path)
            return parse_private_key(path.read_text())
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
    log.warning("generated a new JWT private key in %s", path)
    return candidate
