"""notification-service routes: ``/api/webhooks/`` (admins only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Request, Response

from chassis.auth import Principal, require_role
from chassis.db import DbSession
from chassis.errors import problem_responses
from chassis.pagination import Page, Pagination, page_of
from notification import queries
from notification.schemas import DeliveryRead, SubscriptionCreate, SubscriptionRead, SubscriptionUpdate
from notification.services import subscriptions

router = APIRouter(prefix="/api/webhooks", tags=["webhooks"])

Admin = Annotated[Principal, Depends(require_role("admin"))]
BY_ID = "/{webhook_id:int}/"

CREATE_EXAMPLES = {
    "booked": {
        "summary": "New bookings to a front end",
        "value": {
            "url": "https://frontdesk.example.org/hooks/clinic",
            "event_types": ["appointment.booked", "appointment.cancelled"],
            "description": "Front desk board",
        },
    },
    "all": {
        "summary": "Every event",
        "value": {"url": "https://crm.example.org/clinic", "event_types": ["*"]},
    },
}
SubscriptionBody = Annotated[SubscriptionCreate, Body(openapi_examples=CREATE_EXAMPLES)]


def _allow_private(request: Request) -> bool:
    return request.app.state.settings.webhook_allow_private_targets


@router.post(
    "/",
    status_code=201,
    response_model=SubscriptionRead,
    summary="Subscribe a URL to events",
    description="Admins only. The URL must be http or https and may not lead to a loopback, private "
    "or link-local address (unless the deployment allows them). The answer holds the signing "
    "`secret` (Standard Webhooks).",
    responses=problem_responses(400, 401, 403, 422),
)
def create_webhook(
    request: Request, session: DbSession, _: Admin, body: SubscriptionBody
) -> SubscriptionRead:
    subscription = subscriptions.create_subscription(
        session,
        url=body.url,
        event_types=body.event_types,
        description=body.description,
        allow_private=_allow_private(request),
    )
    return SubscriptionRead.model_validate(subscription)


@router.get(
    "/",
    response_model=Page[SubscriptionRead],
    summary="List webhook subscriptions",
    description="Admins only. Oldest first, paginated.",
    responses=problem_responses(401, 403, 422),
)
def list_webhooks(request: Request, session: DbSession, _: Admin, pagination: Pagination) -> dict:
    count, rows = queries.list_subscriptions(session, pagination)
    return page_of(request, pagination, count, [SubscriptionRead.model_validate(row) for row in rows])


@router.get(
    BY_ID,
    response_model=SubscriptionRead,
    summary="Read a webhook subscription",
    description="Admins only.",
    responses=problem_responses(401, 403, 404),
)
def read_webhook(session: DbSession, _: Admin, webhook_id: int) -> SubscriptionRead:
    return SubscriptionRead.model_validate(subscriptions.get_subscription(session, webhook_id))


@router.patch(
    BY_ID,
    response_model=SubscriptionRead,
    summary="Change a webhook subscription",
    description="Admins only. Fields left out (or null) stay as they are; `is_active: false` pauses "
    "deliveries (they wait, and go out once it is active again).",
    responses=problem_responses(400, 401, 403, 404, 422),
)
def update_webhook(
    request: Request, session: DbSession, _: Admin, webhook_id: int, body: SubscriptionUpdate
) -> SubscriptionRead:
    subscription = subscriptions.update_subscription(
        session, webhook_id, body.changes(), allow_private=_allow_private(request)
    )
    return SubscriptionRead.model_validate(subscription)


@router.delete(
    BY_ID,
    status_code=204,
    response_class=Response,
    summary="Delete a webhook subscription",
    description="Admins only. Its delivery log goes with it; nothing more is sent to it.",
    responses=problem_responses(401, 403, 404),
)
def delete_webhook(session: DbSession, _: Admin, webhook_id: int) -> Response:
    subscriptions.delete_subscription(session, webhook_id)
    return Response(status_code=204)


@router.get(
    BY_ID + "deliveries/",
    response_model=Page[DeliveryRead],
    summary="List a webhook's deliveries",
    description="Admins only. Newest first, paginated: each event sent (or being sent) to this "
    "subscription, its attempts and the last answer.",
    responses=problem_responses(401, 403, 404, 422),
)
def list_webhook_deliveries(
    request: Request, session: DbSession, _: Admin, webhook_id: int, pagination: Pagination
) -> dict:
    count, rows = queries.list_deliveries(session, webhook_id, pagination)
    return page_of(request, pagination, count, [DeliveryRead.model_validate(row) for row in rows])


@router.post(
    BY_ID + "deliveries/{delivery_id:int}/redeliver/",
    status_code=202,
    response_model=DeliveryRead,
    summary="Send a delivery again",
    description="Admins only. The delivery is queued again at once, with the same `webhook-id` and "
    "body and a fresh retry schedule; 202: it is sent in the background.",
    responses=problem_responses(401, 403, 404),
)
def redeliver_webhook(session: DbSession, _: Admin, webhook_id: int, delivery_id: int) -> DeliveryRead:
    return DeliveryRead.model_validate(subscriptions.redeliver(session, webhook_id, delivery_id))
