"""Access-token verification and role checks, shared by every service.

Only identity-service signs tokens (EdDSA, with a ``kid``); every other service
verifies them with identity's public keys from its JWKS, cached, fetched again every
``JWKS_REFRESH_SECONDS`` (so a removed key stops working everywhere within that period)
and at once when a token names a key it has not seen. The gateway checks tokens first; a
service checks them again so that a request reaching it directly is still
authenticated.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Protocol

import httpx
import jwt
from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from jwt import PyJWK

from chassis.errors import ProblemException
from chassis.tracing import outgoing_headers

log = logging.getLogger("chassis.auth")

ALGORITHMS = ["EdDSA"]
ACCESS_TOKEN_TYPE = "access"
# How many verified tokens a verifier remembers (about 1.5 KiB each): the recently active users.
VERIFIED_CACHE_SIZE = 10_000


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a user id and a role."""

    id: int
    role: str


class InvalidToken(Exception):
    """The token is missing, malformed, forged, expired or of the wrong type."""


KeyLookup = Callable[[str], Any]


class RevocationList(Protocol):
    """What identity has taken back since a token was issued (``chassis.revocations``)."""

    def check(self, claims: Mapping[str, Any]) -> None:
        """Raise ``InvalidToken`` if the token of these verified claims was revoked."""


class JwksKeys:
    """Public keys fetched from a JWKS URL, cached for ``refresh_interval`` seconds.

    Keys older than ``refresh_interval`` are fetched again before they are used, so a key
    that identity stops publishing (a leaked one, removed) stops verifying in every service
    within that period, without a restart. A token naming a key not seen yet fetches the set
    at once, at most every ``min_refresh_interval`` seconds (a stream of forged key ids must
    not become a stream of requests to identity). When identity cannot be reached, the keys
    fetched last stay in use and the fetch is retried every ``min_refresh_interval``.
    """

    def __init__(
        self,
        url: str,
        *,
        refresh_interval: float = 300.0,
        min_refresh_interval: float = 5.0,
        timeout: float = 3.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.refresh_interval = refresh_interval
        self.min_refresh_interval = min_refresh_interval
        self.timeout = timeout
        self._clock = clock
        self._keys: dict[str, Any] = {}
        self._fetched_at = -float("inf")  # the last attempt, successful or not
        self._good_until = -float("inf")  # when the keys held now must be fetched again
        self._lock = threading.Lock()

    def __call__(self, kid: str) -> Any:
        key = self.fresh_key(kid)
        if key is not None:
            return key
        with self._lock:
            now = self._clock()
            stale = now >= self._good_until
            if (stale or kid not in self._keys) and now - self._fetched_at >= self.min_refresh_interval:
                self._refresh()
            key = self._keys.get(kid)
        if key is None:
            raise InvalidToken("unknown signing key")
        return key

    def fresh_key(self, kid: str) -> Any | None:
        """The key ``kid`` if it is known and the keys are not due for a refresh; no I/O."""
        if self._clock() >= self._good_until:
            return None
        return self._keys.get(kid)

    def may_block(self, kid: str) -> bool:
        """Whether looking ``kid`` up may fetch the JWKS over the network (unknown or due keys)."""
        return self.fresh_key(kid) is None

    def _refresh(self) -> None:
        now = self._fetched_at = self._clock()
        try:
            response = httpx.get(self.url, timeout=self.timeout, headers=outgoing_headers())
            response.raise_for_status()
            keys = {}
            for jwk in response.json().get("keys", []):
                if jwk.get("kid"):
                    keys[jwk["kid"]] = PyJWK(jwk).key
        except (httpx.HTTPError, ValueError, AttributeError, jwt.PyJWTError) as exc:
            log.warning("could not fetch the JWKS from %s: %s", self.url, exc)
            # Keep the keys held (identity may only be restarting) and try again soon.
            self._good_until = now + self.min_refresh_interval
            return
        self._keys = keys
        self._good_until = now + self.refresh_interval


class TokenVerifier:
    """Verifies access tokens and turns them into a ``Principal``.

    Every request is verified twice (the gateway's ForwardAuth check at identity, then the
    service itself), so tokens that verified are remembered, by their exact text, until
    they expire: a token seen again costs a dictionary lookup instead of parsing and an
    Ed25519 signature check. Only a token that passed every check is remembered, and its
    expiry is checked again on every use; any other text (a forgery differs in at least
    one byte) goes through the full verification.
    """

    token_type = ACCESS_TOKEN_TYPE
    token_kind = "an access token"

    def __init__(
        self,
        keys: KeyLookup,
        *,
        issuer: str,
        audience: str,
        cache_size: int = VERIFIED_CACHE_SIZE,
        revocations: RevocationList | None = None,
    ) -> None:
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        self.cache_size = cache_size
        # Checked on every use, cached or not: a revocation applies to tokens already seen.
        self.revocations = revocations
        # token -> (its claims, its key id, the key that verified it)
        self._verified: dict[str, tuple[dict[str, Any], str, Any]] = {}
        self._verified_lock = threading.Lock()

    def claims(self, token: str) -> dict[str, Any]:
        """The verified claims of an access token (do not modify them); raises ``InvalidToken``."""
        remembered = self._verified.get(token)
        if remembered is not None:
            claims, kid, key = remembered
            # Still unexpired, and its key still the one published (a key identity removed
            # stops verifying the tokens it signed, remembered ones included).
            if claims["exp"] > time.time() and self._still_published(kid, key):
                return claims
            self._verified.pop(token, None)
        claims, kid, key = self._verify(token)
        if self.cache_size > 0:
            with self._verified_lock:
                if len(self._verified) >= self.cache_size:
                    del self._verified[next(iter(self._verified))]  # the oldest entry
                self._verified[token] = (claims, kid, key)
        return claims

    def _still_published(self, kid: str, key: Any) -> bool:
        fresh_key = getattr(self.keys, "fresh_key", None)
        if fresh_key is None:
            return True  # a fixed key ring (identity's own, tests'): keys never go away
        return fresh_key(kid) is key

    def _verify(self, token: str) -> tuple[dict[str, Any], str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken("malformed token") from exc
        # Refuse anything but our asymmetric algorithm before touching keys:
        # this is what stops "alg: none" and HS256-with-the-public-key forgeries.
        if header.get("alg") not in ALGORITHMS or not isinstance(header.get("kid"), str):
            raise InvalidToken("unsupported token algorithm")
        key = self.keys(header["kid"])
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=ALGORITHMS,
                issuer=self.issuer,
                audience=self.audience,
                options={"require": ["exp", "iat", "sub", "iss", "aud", "typ"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidToken("token expired") from exc
        except jwt.PyJWTError as exc:
            raise InvalidToken("invalid token") from exc
        if claims.get("typ") != self.token_type:
            raise InvalidToken(f"not {self.token_kind}")
        if not isinstance(claims["exp"], int | float) or not isinstance(claims["iat"], int | float):
            raise InvalidToken("invalid token claims")
        self.check_claims(claims)
        return claims, header["kid"], key

    def check_claims(self, claims: dict[str, Any]) -> None:
        """The claims an access token must carry: a user id and a role. Which roles exist is the
        product's (identity signs only those); each route names the roles it admits."""
        role = claims.get("role")
        if not isinstance(role, str) or not role or not str(claims["sub"]).isdigit():
            raise InvalidToken("invalid token claims")

    def principal(self, token: str) -> Principal:
        claims = self.claims(token)
        if self.revocations is not None:
            self.revocations.check(claims)
        return Principal(id=int(claims["sub"]), role=claims["role"])

    async def principal_async(self, token: str) -> Principal:
        """``principal()`` for the event loop: CPU-only checks run in place, anything that may
        wait on the network (fetching the JWKS for a key not seen yet) in the thread pool."""
        if self._may_block(token):
            return await run_in_threadpool(self.principal, token)
        return self.principal(token)

    def _may_block(self, token: str) -> bool:
        may_block = getattr(self.keys, "may_block", None)
        if may_block is None:
            return False
        remembered = self._verified.get(token)
        if remembered is not None:
            return may_block(remembered[1])
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError:
            return False  # refused without any lookup
        return isinstance(kid, str) and may_block(kid)


def jwks_verifier(settings: Any, revocations: RevocationList | None = None) -> TokenVerifier:
    """A verifier of identity's access tokens, from a service's ``AuthSettings``; with
    ``revocations``, it also refuses tokens that identity has revoked since."""
    return TokenVerifier(
        jwks_keys(settings),
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        revocations=revocations,
    )


def jwks_keys(settings: Any) -> JwksKeys:
    """identity's public keys, fetched from its JWKS and again every ``JWKS_REFRESH_SECONDS``."""
    return JwksKeys(settings.jwks_url, refresh_interval=settings.jwks_refresh_seconds)


_bearer = HTTPBearer(auto_error=False, description="An access token from `POST /api/auth/login/`.")

UNAUTHORIZED_HEADERS = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
# RFC 6750 §3.1: a request that sent no credentials gets the challenge without an error code.
MISSING_CREDENTIALS_HEADERS = {"WWW-Authenticate": "Bearer"}
# RFC 6750 §3.1: a request that repeats its credentials is malformed (this contract answers 401).
REPEATED_CREDENTIALS_HEADERS = {"WWW-Authenticate": 'Bearer error="invalid_request"'}


def unauthorized(detail: str, *, token_sent: bool = True) -> ProblemException:
    headers = UNAUTHORIZED_HEADERS if token_sent else MISSING_CREDENTIALS_HEADERS
    return ProblemException(401, detail, code="not_authenticated", headers=headers)


def bearer_token(request: Request, credentials: HTTPAuthorizationCredentials | None, *, missing: str) -> str:
    """The request's one bearer token (users' and services' alike), else 401 (``missing`` says
    what was expected). Several ``Authorization`` headers are refused: components reading the
    first and the last of them would disagree about the caller."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise unauthorized(missing, token_sent=False)
    if len(request.headers.getlist("authorization")) > 1:
        raise ProblemException(
            401,
            "Send one Authorization header; this request has several.",
            code="not_authenticated",
            headers=REPEATED_CREDENTIALS_HEADERS,
        )
    return credentials.credentials


async def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """FastAPI dependency: the verified caller, or 401 problem+json.

    Async, so that checking a token (CPU work, mostly a cache hit) does not cost a hop to
    the thread pool on every request; the verifier sends anything that may block there.
    """
    token = bearer_token(request, credentials, missing="Authentication credentials were not provided.")
    verifier: TokenVerifier = request.app.state.token_verifier
    try:
        return await verifier.principal_async(token)
    except InvalidToken as exc:
        raise unauthorized(f"The access token is not valid: {exc}.") from exc


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require_role(*roles: str) -> Callable[[Principal], Principal]:
    """FastAPI dependency factory: the caller, if their role is one of ``roles``; else 403."""
    allowed = frozenset(roles)

    async def dependency(principal: CurrentPrincipal) -> Principal:
        if principal.role not in allowed:
            raise ProblemException(
                403,
                f"This endpoint is for {_or_list(sorted(allowed))}; you are signed in as {principal.role}.",
                code="forbidden",
            )
        return principal

    return dependency


def _or_list(items: Iterable[str]) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]
