import base64
import hashlib
import hmac
import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt import PyJWK

from chassis.auth import InvalidToken, TokenVerifier
from identity.adapters.keys import KeyRing
from identity.adapters.security import TokenIssuer, new_refresh_token, refresh_token_digest
from identity.adapters.token_verifier import ActiveUserTokenVerifier
from identity.adapters.user_statuses import UserStatus

ISSUER, AUDIENCE = "clinic-identity", "clinic"


@pytest.fixture
def ring() -> KeyRing:
    return KeyRing.of(Ed25519PrivateKey.generate())


@pytest.fixture
def issuer(ring) -> TokenIssuer:
    return TokenIssuer(ring, issuer=ISSUER, audience=AUDIENCE, access_ttl=900, refresh_ttl=3600)


@pytest.fixture
def verifier(ring) -> TokenVerifier:
    return TokenVerifier(ring, issuer=ISSUER, audience=AUDIENCE)


def access_token(issuer: TokenIssuer, now: datetime | None = None) -> str:
    return issuer.access_token(
        user_id=42, role="doctor", session_id=uuid.uuid4(), now=now or datetime.now(UTC)
    )


def b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_an_access_token_verifies_with_the_chassis_verifier(issuer, verifier):
    principal = verifier.principal(access_token(issuer))
    assert (principal.id, principal.role) == (42, "doctor")


def test_an_access_token_carries_the_agreed_header_and_claims(issuer, ring, verifier):
    token = access_token(issuer)
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "EdDSA" and header["kid"] == ring.kid
    claims = verifier.claims(token)
    assert claims["sub"] == "42" and claims["typ"] == "access"
    assert claims["iss"] == ISSUER and claims["aud"] == AUDIENCE
    assert claims["exp"] - int(claims["iat"]) == 900
    assert claims["jti"] and claims["sid"]


def test_other_services_verify_tokens_with_the_published_jwks(issuer, ring):
    # What chassis.auth.JwksKeys does with the body of GET /internal/jwks.
    keys = {jwk["kid"]: PyJWK(jwk).key for jwk in ring.jwks()["keys"]}
    verifier = TokenVerifier(keys.__getitem__, issuer=ISSUER, audience=AUDIENCE)
    assert verifier.principal(access_token(issuer)).id == 42


def test_an_expired_access_token_is_refused(issuer, verifier):
    with pytest.raises(InvalidToken, match="expired"):
        verifier.claims(access_token(issuer, now=datetime.now(UTC) - timedelta(hours=1)))


def test_a_token_signed_by_another_key_under_our_kid_is_refused(ring, verifier):
    claims = {
        "sub": "1",
        "role": "admin",
        "typ": "access",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": int(time.time()),
        "exp": int(time.time()) + 60,
    }
    forged = jwt.encode(claims, Ed25519PrivateKey.generate(), algorithm="EdDSA", headers={"kid": ring.kid})
    with pytest.raises(InvalidToken):
        verifier.claims(forged)


def test_an_unsigned_alg_none_token_is_refused(ring, verifier):
    claims = {
        "sub": "1",
        "role": "admin",
        "typ": "access",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": int(time.time()),
        "exp": int(time.time()) + 60,
    }
    forged = f"{b64({'alg': 'none', 'kid': ring.kid})}.{b64(claims)}."
    with pytest.raises(InvalidToken):
        verifier.claims(forged)


def test_an_hs256_token_keyed_with_our_public_key_is_refused(ring, verifier):
    public_pem = ring.signing_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    claims = {
        "sub": "1",
        "role": "admin",
        "typ": "access",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": int(time.time()),
        "exp": int(time.time()) + 60,
    }
    signing_input = f"{b64({'alg': 'HS256', 'kid': ring.kid, 'typ': 'JWT'})}.{b64(claims)}".encode()
    signature = base64.urlsafe_b64encode(hmac.new(public_pem, signing_input, hashlib.sha256).digest()).rstrip(
        b"="
    )
    with pytest.raises(InvalidToken, match="algorithm"):
        verifier.claims(f"{signing_input.decode()}.{signature.decode()}")


def test_a_token_for_another_audience_is_refused(ring, verifier):
    other = TokenIssuer(ring, issuer=ISSUER, audience="someone-else", access_ttl=900, refresh_ttl=3600)
    with pytest.raises(InvalidToken):
        verifier.claims(access_token(other))


def test_refresh_tokens_are_random_and_stored_only_as_their_sha256():
    first, second = new_refresh_token(), new_refresh_token()
    assert first != second and len(first) >= 43
    assert len(refresh_token_digest(first)) == 32
    assert refresh_token_digest(first) == refresh_token_digest(first) != refresh_token_digest(second)


@pytest.mark.parametrize(("issued", "accepted"), [(-5.0, False), (0.0, False), (0.001, True), (5.0, True)])
def test_a_token_issued_up_to_the_users_last_role_change_is_refused_even_naming_the_role_now(
    issuer, verifier, issued, accepted
):
    # As chassis.revocations compares: issued at the change (to the millisecond ``iat`` keeps)
    # counts as before it; a token issued after it (a refresh, a login) is the user's now.
    changed = datetime.now(UTC).replace(microsecond=500_000) - timedelta(seconds=10)
    status = UserStatus(is_active=True, role="doctor", role_changed_at=changed.timestamp())
    claims = verifier.claims(access_token(issuer, changed + timedelta(seconds=issued)))
    if accepted:
        assert ActiveUserTokenVerifier._principal(claims, status).role == "doctor"
    else:
        with pytest.raises(InvalidToken, match="role has changed"):
            ActiveUserTokenVerifier._principal(claims, status)
