"""JWKS keys are fetched again every refresh period: a key identity stops publishing stops
verifying, remembered tokens included; unknown key ids fetch at once, but not more often than
the minimum interval. Against a real HTTP server standing in for identity's ``/internal/jwks``."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm

from chassis.auth import InvalidToken, JwksKeys, TokenVerifier

ISSUER, AUDIENCE = "clinic-identity", "clinic"


class SigningKey:
    def __init__(self) -> None:
        self.kid = uuid.uuid4().hex
        self.private = Ed25519PrivateKey.generate()

    def jwk(self) -> dict[str, Any]:
        return {**json.loads(OKPAlgorithm.to_jwk(self.private.public_key())), "kid": self.kid, "alg": "EdDSA"}

    def token(self, user_id: int = 7, role: str = "patient") -> str:
        now = int(time.time())
        claims = {
            "sub": str(user_id),
            "role": role,
            "typ": "access",
            "iss": ISSUER,
            "aud": AUDIENCE,
            "iat": now,
            "exp": now + 900,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self.private, algorithm="EdDSA", headers={"kid": self.kid})


class JwksServer:
    """identity's ``GET /internal/jwks``, publishing whatever ``keys`` holds; counts the requests."""

    def __init__(self) -> None:
        self.keys: list[SigningKey] = []
        self.requests = 0
        self.down = False
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                server.requests += 1
                if server.down:
                    self.send_response(503)
                    self.end_headers()
                    return
                body = json.dumps({"keys": [key.jwk() for key in server.keys]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/internal/jwks"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


class Clock:
    """A monotonic clock the test moves by hand (no sleeping, no timing assumptions)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def server() -> Iterator[JwksServer]:
    server = JwksServer()
    yield server
    server.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def verifier_of(server: JwksServer, clock: Clock) -> TokenVerifier:
    keys = JwksKeys(server.url, refresh_interval=300, min_refresh_interval=5, clock=clock)
    return TokenVerifier(keys, issuer=ISSUER, audience=AUDIENCE)


def test_a_removed_key_stops_verifying_within_the_refresh_period(server, clock):
    old, new = SigningKey(), SigningKey()
    server.keys = [old, new]
    verifier = verifier_of(server, clock)
    remembered = old.token()
    assert verifier.principal(remembered).id == 7
    server.keys = [new]  # the leaked key is removed from identity's JWKS
    clock.now += 299
    assert verifier.principal(remembered).id == 7  # within the period: still the keys held
    clock.now += 1
    with pytest.raises(InvalidToken, match="unknown signing key"):
        verifier.principal(remembered)  # the remembered token too
    with pytest.raises(InvalidToken, match="unknown signing key"):
        verifier.principal(old.token())
    assert verifier.principal(new.token()).id == 7


def test_keys_are_fetched_once_per_period_while_in_use(server, clock):
    key = SigningKey()
    server.keys = [key]
    verifier = verifier_of(server, clock)
    for _ in range(5):
        verifier.principal(key.token())
    assert server.requests == 1
    clock.now += 300
    verifier.principal(key.token())
    assert server.requests == 2


def test_unknown_key_ids_fetch_at_most_once_per_minimum_interval(server, clock):
    known = SigningKey()
    server.keys = [known]
    verifier = verifier_of(server, clock)
    verifier.principal(known.token())
    clock.now += 5
    forgeries = [SigningKey() for _ in range(10)]
    for forged in forgeries:
        with pytest.raises(InvalidToken):
            verifier.principal(forged.token())
    assert server.requests == 2  # the first lookup, then one refetch for all ten unknown ids
    newly_published = SigningKey()
    server.keys = [known, newly_published]
    clock.now += 5
    assert verifier.principal(newly_published.token()).id == 7  # a new key is found at once
    assert server.requests == 3


def test_the_keys_held_stay_in_use_while_identity_cannot_be_reached(server, clock):
    key = SigningKey()
    server.keys = [key]
    verifier = verifier_of(server, clock)
    verifier.principal(key.token())
    server.down = True
    clock.now += 300
    assert verifier.principal(key.token()).id == 7
    assert verifier.principal(key.token()).id == 7
    assert server.requests == 2  # retried after the minimum interval, not on every request
    clock.now += 5
    verifier.principal(key.token())
    assert server.requests == 3
    server.down = False
    server.keys = []
    clock.now += 5
    with pytest.raises(InvalidToken):
        verifier.principal(key.token())


def test_a_remembered_token_goes_off_the_event_loop_when_its_keys_are_due(server, clock):
    key = SigningKey()
    server.keys = [key]
    verifier = verifier_of(server, clock)
    token = key.token()
    assert verifier._may_block(token)  # never fetched: the first lookup fetches
    assert asyncio.run(verifier.principal_async(token)).id == 7
    assert not verifier._may_block(token)
    clock.now += 300
    assert verifier._may_block(token)
    assert asyncio.run(verifier.principal_async(token)).id == 7
    assert not verifier._may_block(token)
