"""notification-service domain errors and their HTTP statuses."""

from chassis.errors import DomainError


class SubscriptionNotFound(DomainError):
    """No webhook subscription has this id."""

    code = "webhook_not_found"


class DeliveryNotFound(DomainError):
    """The subscription has no delivery with this id."""

    code = "webhook_delivery_not_found"


class WebhookUrlRefused(DomainError):
    """The URL is not one webhooks may call (scheme, host, address): a validation error of ``url``."""

    code = "validation_error"

    def __init__(self, message: str) -> None:
        super().__init__(
            f"The request is not valid: url: {message}", errors=[{"field": "url", "message": message}]
        )


STATUS_OF: dict[type[DomainError], int] = {
    SubscriptionNotFound: 404,
    DeliveryNotFound: 404,
    WebhookUrlRefused: 422,
}
