"""The verifier remembers tokens that passed verification, without ever accepting one that did not."""

from __future__ import annotations

import base64
import json
import time

import pytest

from chassis.auth import InvalidToken, TokenVerifier
from chassis.testkit import TokenMinter


@pytest.fixture
def minter() -> TokenMinter:
    return TokenMinter()


def _tampered(token: str, **claims: object) -> str:
    """``token`` with its payload changed and its (now wrong) signature kept."""
    header, payload, signature = token.split(".")
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    data.update(claims)
    encoded = base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    return f"{header}.{encoded}.{signature}"


def test_a_verified_token_is_answered_from_memory_the_next_time(minter):
    verifier = minter.verifier()
    calls = []
    keys = verifier.keys
    verifier.keys = lambda kid: calls.append(kid) or keys(kid)
    token = minter.token(7, "patient")
    assert verifier.principal(token).id == 7
    assert verifier.principal(token).id == 7
    assert len(calls) == 1


def test_a_remembered_token_is_refused_once_it_expires(minter):
    verifier = minter.verifier()
    token = minter.token(7, "patient", ttl=1)
    verifier.claims(token)
    time.sleep(2.1)  # past its expiry, whole seconds as JWTs count them
    with pytest.raises(InvalidToken, match="expired"):
        verifier.claims(token)
    assert token not in verifier._verified


def test_a_tampered_copy_of_a_remembered_token_is_still_refused(minter):
    verifier = minter.verifier()
    token = minter.token(7, "patient")
    verifier.principal(token)
    with pytest.raises(InvalidToken):
        verifier.principal(_tampered(token, role="admin"))
    with pytest.raises(InvalidToken):
        verifier.principal(token + "x")


def test_tokens_that_failed_are_not_remembered(minter):
    verifier = minter.verifier()
    forged = _tampered(minter.token(7, "patient"), sub="8")
    for _ in range(2):
        with pytest.raises(InvalidToken):
            verifier.principal(forged)
    assert forged not in verifier._verified


def test_the_memory_holds_at_most_cache_size_tokens_dropping_the_oldest(minter):
    verifier = TokenVerifier(minter._key, issuer=minter.issuer, audience=minter.audience, cache_size=3)
    tokens = [minter.token(n, "patient") for n in range(1, 6)]
    for token in tokens:
        verifier.principal(token)
    assert list(verifier._verified) == tokens[2:]
