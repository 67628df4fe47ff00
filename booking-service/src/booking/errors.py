"""booking-service domain errors and their HTTP statuses."""

from chassis.errors import DomainError

STATUS_OF: dict[type[DomainError], int] = {}
