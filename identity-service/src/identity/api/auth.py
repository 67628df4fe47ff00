"""identity-service's public ``/api/auth`` routes: register, log in, refresh, the caller's account.

Schema in, use case, schema out; the rules are in ``domain``, the use cases in ``services``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Request, Response

from chassis.auth import CurrentPrincipal
from chassis.db import AppReads
from chassis.errors import problem_responses
from identity import queries, services
from identity.adapters.components import AppComponents
from identity.adapters.security import IssuedTokens
from identity.adapters.throttle import client_address
from identity.schemas import (
    LoginRequest,
    RefreshRequest,
    TokenPair,
    UserRead,
    UserRegister,
    UserUpdateMe,
)

auth = APIRouter(prefix="/api/auth", tags=["auth"])


# 429s: the gateway's generous per-address rate limit on register, login and refresh (Traefik's
# own 429 with the docs app's problem+json, code ``rate_limited``: gateway/dynamic/routes.yml),
# and identity's login throttling (code ``login_throttled``: adapters/throttle.py).
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
    issued = services.log_in(
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
    return _token_pair(services.refresh_session(parts.db, parts.tokens, refresh_token=body.refresh))


@auth.get(
    "/me/",
    response_model=UserRead,
    summary="The caller's account",
    description="Any role. The account of the access token's user, as it is now.",
    responses=problem_responses(401),
)
async def read_me(principal: CurrentPrincipal, reads: AppReads) -> dict[str, Any]:
    return await queries.read_user(reads, principal.id)


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
    services.log_out(parts.db, user_id=principal.id, refresh_token=body.refresh)
    # Other replicas hear of the ended session through NOTIFY; this one must not wait for it.
    parts.statuses.forget(principal.id)
    return Response(status_code=204)
