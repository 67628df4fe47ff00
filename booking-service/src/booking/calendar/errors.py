"""The calendar feeds' domain errors and their HTTP statuses."""

from chassis.errors import DomainError


class FeedNotFound(DomainError):
    """No feed has this secret (never had, or its URL was rotated), or its user is deactivated."""

    code = "feed_not_found"


STATUS_OF: dict[type[DomainError], int] = {FeedNotFound: 404}
