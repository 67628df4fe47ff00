"""identity-service routes: schema in, use case, schema out.

``auth`` and ``users`` are public (through the gateway); ``internal`` serves the other
services (JWKS) and the gateway (ForwardAuth) and is never routed publicly.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import JSONResponse

from chassis.auth import CurrentPrincipal, Principal, require_role
from chassis.errors import problem_responses
from chassis.pagination import Page, Pagination, page_of
from identity import services, sessions
from identity.components import AppComponents
from identity.schemas import (
    LoginRequest,
    RefreshRequest,
    TokenPair,
    UserAdminUpdate,
    UserFilters,
    UserRead,
    UserRegister,
    UserUpdateMe,
)
from identity.security import IssuedTokens

auth = APIRouter(prefix="/api/auth", tags=["auth"])
users = APIRouter(prefix="/api/users", tags=["users"], responses=problem_responses(401, 403))
internal = APIRouter(prefix="/internal", tags=["internal"], include_in_schema=False)

Admin = Annotated[Principal, Depends(require_role("admin"))]
UserId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The user's id.")]


def _token_pair(issued: IssuedTokens) -> TokenPair:
    return TokenPair(access=issued.access, refresh=issued.refresh, expires_in=issued.expires_in)


@auth.post(
    "/register/",
    status_code=201,
    summary="Register a patient or doctor account",
    responses=problem_responses(400, 409, 422),
)
def register(body: UserRegister, parts: AppComponents) -> UserRead:
    user = services.register_user(parts.db, parts.passwords, **body.model_dump())
    return UserRead.model_validate(user)


@auth.post("/login/", summary="Log in with email and password", responses=problem_responses(400, 401, 422))
def login(body: LoginRequest, parts: AppComponents) -> TokenPair:
    issued = sessions.log_in(
        parts.db, parts.passwords, parts.tokens, email=body.email, password=body.password
    )
    return _token_pair(issued)


@auth.post(
    "/token/refresh/",
    summary="Trade a refresh token for new tokens",
    description="The refresh token is single-use: the answer carries its replacement. "
    "Presenting a used refresh token again revokes every token of its session.",
    responses=problem_responses(400, 401, 422),
)
def refresh(body: RefreshRequest, parts: AppComponents) -> TokenPair:
    return _token_pair(sessions.refresh_session(parts.db, parts.tokens, refresh_token=body.refresh))


@auth.get("/me/", summary="The caller's account", responses=problem_responses(401))
def read_me(principal: CurrentPrincipal, parts: AppComponents) -> UserRead:
    return UserRead.model_validate(services.get_user(parts.db, principal.id))


@auth.patch(
    "/me/",
    summary="Change the caller's name, phone or password",
    description="A new password needs `current_password`, and signs out the account's other sessions.",
    responses=problem_responses(400, 401, 422),
)
def update_me(body: UserUpdateMe, principal: CurrentPrincipal, parts: AppComponents) -> UserRead:
    user = services.update_own_account(
        parts.db,
        parts.passwords,
        user_id=principal.id,
        session_id=getattr(principal, "session_id", None),
        changes=body.model_dump(exclude_unset=True),
    )
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
    return Response(status_code=204)


@users.get("/", summary="List users", response_model=Page[UserRead], responses=problem_responses(422))
def list_users(
    request: Request,
    _: Admin,
    parts: AppComponents,
    page: Pagination,
    filters: Annotated[UserFilters, Query()],
) -> dict[str, Any]:
    count, found = services.list_users(parts.db, **filters.model_dump(), offset=page.offset, limit=page.limit)
    return page_of(request, page, count, [UserRead.model_validate(user) for user in found])


@users.get("/{user_id}/", summary="One user", responses=problem_responses(404))
def read_user(user_id: UserId, _: Admin, parts: AppComponents) -> UserRead:
    return UserRead.model_validate(services.get_user(parts.db, user_id))


@users.patch(
    "/{user_id}/",
    summary="Change a user's name, phone, role or active flag",
    description="`is_active: false` deactivates the account exactly like DELETE. "
    "An admin cannot demote or deactivate itself (409).",
    responses=problem_responses(400, 404, 409, 422),
)
def update_user(user_id: UserId, body: UserAdminUpdate, admin: Admin, parts: AppComponents) -> UserRead:
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
