"""Service-to-service authentication: who is calling an internal endpoint, proven by identity.

Every internal call carries a short-lived *service token*, never a user's token: the
caller trades its client secret at identity (OAuth 2.0 client credentials,
``POST {IDENTITY_URL}/internal/service-tokens``) for a token with ``typ: service``,
``sub`` = the calling service and ``aud`` = the service it calls, signed with
identity's key like every access token. The callee checks signature, expiry, type and
audience with identity's JWKS, then whether that caller may use the endpoint
(``require_service("booking")``). A service that cannot get a token fails closed: its
call is not made, and its readiness says so.

Client secrets are one file per service under ``SERVICE_SECRETS_DIR`` (identity reads
every client's, a service only its own), or ``SERVICE_SECRET`` for a service's own.
For the local stack the files are created when absent, like identity's signing key.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated, Any

import httpx
from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from chassis.auth import InvalidToken, KeyLookup, TokenVerifier, bearer_token, unauthorized
from chassis.errors import ProblemException
from chassis.tracing import outgoing_headers

log = logging.getLogger("chassis.service_auth")

SERVICE_TOKEN_TYPE = "service"
TOKEN_PATH = "/internal/service-tokens"
SERVICE_NAME = re.compile(r"^[a-z][a-z0-9-]{0,31}$")


class ServiceCredentialUnavailable(Exception):
    """No valid service token could be had from identity (down, or the secret is refused)."""


class ServiceTokenVerifier(TokenVerifier):
    """Verifies service tokens meant for this service (``aud`` = its name)."""

    token_type = SERVICE_TOKEN_TYPE
    token_kind = "a service token"

    def __init__(self, keys: KeyLookup, *, issuer: str, service: str) -> None:
        super().__init__(keys, issuer=issuer, audience=service, cache_size=64)

    def check_claims(self, claims: dict[str, Any]) -> None:
        if not isinstance(claims["sub"], str) or not SERVICE_NAME.match(claims["sub"]):
            raise InvalidToken("invalid token claims")

    def caller(self, token: str) -> str:
        """The calling service's name; raises ``InvalidToken``."""
        return self.claims(token)["sub"]

    async def caller_async(self, token: str) -> str:
        """``caller()`` for the event loop: a JWKS fetch (an unknown key) runs in the thread pool."""
        if self._may_block(token):
            return await run_in_threadpool(self.caller, token)
        return self.caller(token)


_bearer = HTTPBearer(auto_error=False)


def require_service(*callers: str) -> Callable[..., Any]:
    """FastAPI dependency factory: the calling service, if it is one of ``callers``.

    401 problem+json without a valid service token (a user's token is refused: wrong
    type and audience), 403 for a service that may not call this endpoint.
    """
    allowed = frozenset(callers)

    async def dependency(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> str:
        token = bearer_token(request, credentials, missing="This endpoint needs a service credential.")
        verifier: ServiceTokenVerifier = request.app.state.trust.service_verifier
        try:
            caller = await verifier.caller_async(token)
        except InvalidToken as exc:
            raise unauthorized(f"The service credential is not valid: {exc}.") from exc
        if caller not in allowed:
            raise ProblemException(
                403, "This internal endpoint is not for the calling service.", code="forbidden"
            )
        return caller

    return dependency


class ServiceCredentials:
    """This service's service tokens, one per audience, fetched from identity and renewed early."""

    def __init__(
        self,
        identity_url: str,
        client_id: str,
        secret: str,
        *,
        timeout: float = 3.0,
        renew_before: float = 60.0,
        retry_after: float = 1.0,
    ) -> None:
        self.url = identity_url.rstrip("/") + TOKEN_PATH
        self.client_id = client_id
        self._secret = secret
        self.timeout = timeout
        self.renew_before = renew_before
        self.retry_after = retry_after
        self._tokens: dict[str, tuple[str, float]] = {}  # audience -> (header value, expires at)
        self._failed_at: dict[str, float] = {}
        self._lock = threading.Lock()

    def authorization(self, audience: str) -> str:
        """``Bearer <service token>`` for calls to ``audience``; raises ``ServiceCredentialUnavailable``."""
        cached = self._tokens.get(audience)
        now = time.time()
        if cached is not None and cached[1] - self.renew_before > now:
            return cached[0]
        with self._lock:
            cached = self._tokens.get(audience)
            if cached is not None and cached[1] - self.renew_before > now:
                return cached[0]
            # After a failure, wait a little before asking again: a down identity is not
            # hammered by every request, and each of them fails at once instead.
            if now - self._failed_at.get(audience, 0.0) < self.retry_after:
                return self._still_valid(cached, now)
            try:
                header, expires_at = self._fetch(audience)
            except ServiceCredentialUnavailable:
                self._failed_at[audience] = now
                return self._still_valid(cached, now)
            self._tokens[audience] = (header, expires_at)
            self._failed_at.pop(audience, None)
            return header

    @staticmethod
    def _still_valid(cached: tuple[str, float] | None, now: float) -> str:
        # A token near its renewal time is still good until it expires (with a little margin).
        if cached is not None and cached[1] - 5 > now:
            return cached[0]
        raise ServiceCredentialUnavailable("no service token: identity could not be asked or refused")

    def _fetch(self, audience: str) -> tuple[str, float]:
        try:
            response = httpx.post(
                self.url,
                json={"grant_type": "client_credentials", "audience": audience},
                auth=(self.client_id, self._secret),
                timeout=self.timeout,
                headers=outgoing_headers(),
            )
        except httpx.HTTPError as exc:
            log.warning("identity unreachable for a service token (%s)", exc.__class__.__name__)
            raise ServiceCredentialUnavailable(str(exc)) from exc
        if response.status_code != 200:
            log.error("identity refused a service token for %s: %s", self.client_id, response.status_code)
            raise ServiceCredentialUnavailable(f"identity answered {response.status_code}")
        try:
            body = response.json()
            token, expires_in = str(body["access_token"]), float(body["expires_in"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ServiceCredentialUnavailable("identity's answer is not a token") from exc
        return f"Bearer {token}", time.time() + expires_in


# --- secrets ----------------------------------------------------------------------------


def service_secret(directory: str | os.PathLike[str], service: str, *, create: bool = True) -> str | None:
    """The client secret of ``service`` in ``directory`` (a file named after it).

    With ``create``, a missing file is created with a fresh random secret (mode 0600), the
    way the local stack gets its secrets; whoever comes first writes it, the rest read it.
    None when there is no file and it cannot be created (a read-only mount without it).
    """
    path = Path(directory) / service
    if not path.is_file() and create:
        _create_secret(path)
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def _create_secret(path: Path) -> None:
    """Write a fresh secret to ``path`` unless it exists: written aside, then linked into place
    (a link never replaces a file), so a reader never sees it half written."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, staged = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_urlsafe(32) + "\n")
        try:
            os.link(staged, path)
        except FileExistsError:
            pass  # another process came first: its secret stands
        finally:
            os.unlink(staged)
    except OSError as exc:
        log.warning("cannot create the service secret %s: %s", path, exc.__class__.__name__)


def client_secrets(
    directory: str | os.PathLike[str], clients: Iterable[str], overrides: str | None
) -> dict[str, str]:
    """identity's table of client secrets: a file per client, ``overrides`` (JSON) on top."""
    table = {}
    for client in clients:
        value = service_secret(directory, client)
        if value is not None:
            table[client] = value
    if overrides:
        table.update({str(k): str(v) for k, v in json.loads(overrides).items()})
    return table
