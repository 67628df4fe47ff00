"""identity-service's ``/internal`` routes: the JWKS, the gateway's token check (ForwardAuth) and
service tokens. Never routed publicly."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from chassis.auth import CurrentPrincipal
from chassis.timezones import utcnow
from identity.adapters.components import AppComponents
from identity.adapters.security import service_client_authenticated
from identity.errors import InvalidClient
from identity.schemas import (
    ServiceTokenRequest,
)

internal = APIRouter(prefix="/internal", tags=["internal"], include_in_schema=False)


@internal.get("/jwks")
async def jwks(parts: AppComponents) -> dict[str, Any]:
    """The public keys of identity's access tokens (JSON Web Key Set)."""
    return parts.keys.jwks()


@internal.get("/verify")
async def verify(principal: CurrentPrincipal) -> JSONResponse:
    """The gateway's ForwardAuth check: 200 with the caller's id and current role, else 401.

    Traefik calls it with GET and the client's headers, body never included. The
    dependency does the work (signature, expiry, token type, then the user's current
    status from the cache or one primary-key lookup) in the thread pool, so this
    handler only writes headers.
    """
    return JSONResponse({}, headers={"X-User-Id": str(principal.id), "X-User-Role": principal.role})


@internal.post("/service-tokens")
def service_token(body: ServiceTokenRequest, request: Request, parts: AppComponents) -> JSONResponse:
    """A service token (OAuth 2.0 client credentials, RFC 6749 §4.4, with a JSON body like every
    Clinic endpoint): HTTP Basic with the calling service's name and secret, and
    ``{"grant_type": "client_credentials", "audience": "<service it calls>"}``. The token says
    "this is <client>, calling <audience>" for ``SERVICE_TOKEN_TTL_SECONDS``."""
    client_id, secret = _basic_credentials(request)
    if not service_client_authenticated(parts.service_clients, client_id, secret):
        raise InvalidClient()
    token = parts.tokens.service_token(client=client_id, audience=body.audience, now=utcnow())
    return JSONResponse(
        {"access_token": token, "token_type": "Bearer", "expires_in": parts.tokens.service_ttl},
        headers={"Cache-Control": "no-store"},
    )


def _basic_credentials(request: Request) -> tuple[str, str]:
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        raise InvalidClient()
    try:
        client_id, separator, secret = base64.b64decode(encoded, validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidClient() from exc
    if not separator:
        raise InvalidClient()
    return client_id, secret
