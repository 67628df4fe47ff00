"""identity-service routes: schema in, use case, schema out.

``auth`` and ``users`` are public (through the gateway); ``internal`` serves the other
services (JWKS) and the gateway (ForwardAuth) and is never routed publicly.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response
from fastapi.responses import JSONResponse

from chassis.auth import CurrentPrincipal, Principal, require_role
from chassis.db import AppReads
from chassis.errors import problem_responses
from chassis.pagination import Page, Pagination, page_of
from chassis.timezones import utcnow
from identity import services, sessions
from identity.components import AppComponents
from identity.errors import InvalidClient
from identity.schemas import (
    LoginRequest,
    RefreshRequest,
    ServiceTokenRequest,
    TokenPair,
    UserAdminUpdate,
    UserFilters,
    UserRead,
    UserRegister,
    UserUpdateMe,
)
from identity.security import IssuedTokens, service_client_authenticated
from identity.throttle import client_address

auth = APIRouter(prefix="/api/auth", tags=["auth"])
users = APIRouter(prefix="/api/users", tags=["users"], responses=problem_responses(401, 403))
internal = APIRouter(prefix="/internal", tags=["internal"], include_in_schema=False)

Admin = Annotated[Principal, Depends(require_role("admin"))]
UserId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The user's id.")]


# 429s: the gateway's generous per-address rate limit on register, login and refresh (Traefik's
# own 429 with the docs app's problem+json, code ``rate_limited``: gateway/dynamic/routes.yml),
# and identity's login throttling (code ``login_throttled``: throttle.py).
def _too_many(description: str) -> dict[int | str, dict[str, Any]]:
    return {
        429: {
            "description": description,
            "headers": {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}},
            "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
    }


RATE_LIMITED = _too_many(
    "Too many requests from this client address (the gateway allows 120 a minute by default; "
    "code `rate_limited`); retry after `Retry-After` seconds."
)
THROTTLED = _too_many(
    "Too many failed logins for this account (5 in 15 minutes by default) or from this client "
    "address (100), code `login_throttled`: refused without checking the password, the right one "
    "included, for `Retry-After` seconds. The gateway's own limit on requests from one address "
    "(120 a minute by default) answers 429 too, in plain text, with `Retry-After`."
)
CURRENT_PASSWORD_THROTTLED = _too_many(
    "Too many failed logins or wrong current passwords for this account, or failed logins from this "
    "address (code `login_throttled`); retry after `Retry-After` seconds."
)


# Request examples, offered by Swagger UI's "Try it out" and shown by Redoc.
REGISTER_EXAMPLES = {
    "patient": {
        "summary": "A patient",
        "value": {
            "email": "ada@example.com",
            "password": "correct horse battery",
            "full_name": "Ada Lovelace",
            "phone": "+44 20 7946 0000",
        },
    },
    "doctor": {
        "summary": "A doctor (fills in the profile next, PATCH /api/doctors/me/)",
        "value": {
            "email": "dr.grey@example.com",
            "password": "stethoscope in the drawer",
            "full_name": "Meredith Grey",
            "role": "doctor",
        },
    },
}
LOGIN_EXAMPLES = {
    "patient": {
        "summary": "The patient registered above",
        "value": {"email": "ada@example.com", "password": "correct horse battery"},
    }
}
REFRESH_EXAMPLES = {
    "refresh": {
        "summary": "A refresh token from login",
        "value": {"refresh": "paste the refresh token of the login answer here"},
    }
}
UPDATE_ME_EXAMPLES = {
    "contact": {
        "summary": "New name and phone",
        "value": {"full_name": "Ada King", "phone": "+44 20 7946 0001"},
    },
    "password": {
        "summary": "New password",
        "value": {"password": "analytical engine 1843", "current_password": "correct horse battery"},
    },
}
ADMIN_UPDATE_EXAMPLES = {
    "role": {"summary": "Make the user a doctor", "value": {"role": "doctor"}},
    "deactivate": {"summary": "Deactivate the account", "value": {"is_active": False}},
}


def _token_pair(issued: IssuedTokens) -> TokenPair:
    return TokenPair(access=issued.access, refresh=issued.refresh, expires_in=issued.expires_in)


@auth.post(
    "/register/",
    status_code=201,
    summary="Register a patient or doctor account",
    description="Public. Creates a `patient` (the default) or a `doctor`, never an `admin`; a doctor's "
    "empty profile appears in `/api/doctors/` moments later. The email is unique case-insensitively "
    "(409 when taken); the password needs at least 8 characters, not all digits, not the email (422). "
    "Log in next to get tokens.",
    responses={**problem_responses(400, 409, 422), **RATE_LIMITED},
)
def register(
    body: Annotated[UserRegister, Body(openapi_examples=REGISTER_EXAMPLES)], parts: AppComponents
) -> UserRead:
    user = services.register_user(parts.db, parts.passwords, **body.model_dump())
    return UserRead.model_validate(user)


@auth.post(
    "/login/",
    summary="Log in with email and password",
    description="Public. Answers an `access` token (send it as `Authorization: Bearer <access>`; "
    "`expires_in` seconds) and a single-use `refresh` token. Wrong credentials and deactivated "
    "accounts get the same 401. Failed logins are throttled per account and per client address "
    "(429 `login_throttled`, also for the right password while it lasts).",
    responses={**problem_responses(400, 401, 422), **THROTTLED},
)
def login(
    body: Annotated[LoginRequest, Body(openapi_examples=LOGIN_EXAMPLES)],
    request: Request,
    parts: AppComponents,
) -> TokenPair:
    issued = sessions.log_in(
        parts.db,
        parts.passwords,
        parts.tokens,
        parts.throttle,
        email=body.email,
        password=body.password,
        address=client_address(request, parts.trusted_proxy_count),
    )
    return _token_pair(issued)


@auth.post(
    "/token/refresh/",
    summary="Trade a refresh token for new tokens",
    description="The refresh token is single-use: the answer carries its replacement. "
    "Presenting a used refresh token again revokes every token of its session.",
    responses={**problem_responses(400, 401, 422), **RATE_LIMITED},
)
def refresh(
    body: Annotated[RefreshRequest, Body(openapi_examples=REFRESH_EXAMPLES)], parts: AppComponents
) -> TokenPair:
    return _token_pair(sessions.refresh_session(parts.db, parts.tokens, refresh_token=body.refresh))


@auth.get(
    "/me/",
    response_model=UserRead,
    summary="The caller's account",
    description="Any role. The account of the access token's user, as it is now.",
    responses=problem_responses(401),
)
async def read_me(principal: CurrentPrincipal, reads: AppReads) -> dict[str, Any]:
    return await services.read_user(reads, principal.id)


@auth.patch(
    "/me/",
    summary="Change the caller's name, phone or password",
    description="A new password needs `current_password`, and signs out the account's other sessions. "
    "A wrong `current_password` counts as a failed login of the account (429 `login_throttled` past "
    "the limit).",
    responses={**problem_responses(400, 401, 422), **CURRENT_PASSWORD_THROTTLED},
)
def update_me(
    body: Annotated[UserUpdateMe, Body(openapi_examples=UPDATE_ME_EXAMPLES)],
    request: Request,
    principal: CurrentPrincipal,
    parts: AppComponents,
) -> UserRead:
    user = services.update_own_account(
        parts.db,
        parts.passwords,
        parts.throttle,
        user_id=principal.id,
        session_id=getattr(principal, "session_id", None),
        changes=body.model_dump(exclude_unset=True),
        address=client_address(request, parts.trusted_proxy_count),
    )
    parts.statuses.forget(principal.id)  # a new password ends the other sessions
    return UserRead.model_validate(user)


@auth.post(
    "/logout/",
    status_code=204,
    summary="End the session of a refresh token",
    description="Revokes the refresh token and every token rotated from the same login. "
    "A token that is not the caller's is ignored (still 204), so nothing leaks about it.",
    responses=problem_responses(400, 401, 422),
)
def logout(body: RefreshRequest, principal: CurrentPrincipal, parts: AppComponents) -> Response:
    sessions.log_out(parts.db, user_id=principal.id, refresh_token=body.refresh)
    # Other replicas hear of the ended session through NOTIFY; this one must not wait for it.
    parts.statuses.forget(principal.id)
    return Response(status_code=204)


@users.get(
    "/",
    summary="List users",
    description="Admin only. Every account, oldest first, filtered by `role`, `is_active` and "
    "`search` (part of the email or the name, any case); paginated.",
    response_model=Page[UserRead],
    responses=problem_responses(422),
)
def list_users(
    request: Request,
    _: Admin,
    parts: AppComponents,
    page: Pagination,
    filters: Annotated[UserFilters, Query()],
) -> dict[str, Any]:
    count, found = services.list_users(parts.db, **filters.model_dump(), offset=page.offset, limit=page.limit)
    return page_of(request, page, count, [UserRead.model_validate(user) for user in found])


@users.get(
    "/{user_id}/",
    summary="One user",
    description="Admin only. Any account, deactivated ones included.",
    responses=problem_responses(404, 422),
)
def read_user(user_id: UserId, _: Admin, parts: AppComponents) -> UserRead:
    return UserRead.model_validate(services.get_user(parts.db, user_id))


@users.patch(
    "/{user_id}/",
    summary="Change a user's name, phone, role or active flag",
    description="`is_active: false` deactivates the account exactly like DELETE. "
    "An admin cannot demote or deactivate itself (409).",
    responses=problem_responses(400, 404, 409, 422),
)
def update_user(
    user_id: UserId,
    body: Annotated[UserAdminUpdate, Body(openapi_examples=ADMIN_UPDATE_EXAMPLES)],
    admin: Admin,
    parts: AppComponents,
) -> UserRead:
    user = services.update_user(
        parts.db, actor_id=admin.id, user_id=user_id, changes=body.model_dump(exclude_unset=True)
    )
    # Other replicas hear of the change through NOTIFY; this one must not wait for it.
    parts.statuses.forget(user_id)
    return UserRead.model_validate(user)


@users.delete(
    "/{user_id}/",
    status_code=204,
    summary="Deactivate a user",
    description="The record stays; login and every token of the user stop working at once. "
    "An admin cannot delete itself (409).",
    responses=problem_responses(404, 409),
)
def delete_user(user_id: UserId, admin: Admin, parts: AppComponents) -> Response:
    services.deactivate_user(parts.db, actor_id=admin.id, user_id=user_id)
    parts.statuses.forget(user_id)
    return Response(status_code=204)


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
