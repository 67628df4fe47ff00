"""identity-service routers: ``auth`` and ``users`` are public (through the gateway); ``internal``
serves the other services (JWKS) and the gateway (ForwardAuth) and is never routed publicly."""

from identity.api.auth import auth
from identity.api.internal import internal
from identity.api.users import users

__all__ = ["auth", "internal", "users"]
