"""identity-service's public ``/api/users`` routes: admins manage accounts."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response

from chassis.auth import Principal, require_role
from chassis.errors import problem_responses
from chassis.pagination import Page, Pagination, page_of
from identity import queries, services
from identity.adapters.components import AppComponents
from identity.schemas import (
    UserAdminUpdate,
    UserFilters,
    UserRead,
)

users = APIRouter(prefix="/api/users", tags=["users"], responses=problem_responses(401, 403))

Admin = Annotated[Principal, Depends(require_role("admin"))]
UserId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The user's id.")]

ADMIN_UPDATE_EXAMPLES = {
    "role": {"summary": "Make the user a doctor", "value": {"role": "doctor"}},
    "deactivate": {"summary": "Deactivate the account", "value": {"is_active": False}},
}


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
    count, found = queries.list_users(parts.db, **filters.model_dump(), offset=page.offset, limit=page.limit)
    return page_of(request, page, count, [UserRead.model_validate(user) for user in found])


@users.get(
    "/{user_id}/",
    summary="One user",
    description="Admin only. Any account, deactivated ones included.",
    responses=problem_responses(404, 422),
)
def read_user(user_id: UserId, _: Admin, parts: AppComponents) -> UserRead:
    return UserRead.model_validate(queries.get_user(parts.db, user_id))


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
