"""identity's own token check: the signature, then the user as they are now (``UserStatuses``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from chassis.auth import InvalidToken, KeyLookup, Principal, TokenVerifier
from identity.adapters.user_statuses import UserStatus, UserStatuses


@dataclass(frozen=True, slots=True)
class SessionPrincipal(Principal):
    """A ``Principal`` that also knows its session (the refresh-token family of its login)."""

    session_id: uuid.UUID | None = None


def _session_id(claims: dict) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(claims["sid"]))
    except (KeyError, ValueError):
        return None


class ActiveUserTokenVerifier(TokenVerifier):
    """A ``TokenVerifier`` judging tokens on identity's current state: it also refuses tokens of
    deactivated or deleted users, of ended sessions, those naming a role the user no longer
    has, and those issued up to the user's last role change, whatever role they name (after
    admin -> patient -> admin, a token from before the first change names the role again). A
    role change applies at once; the user logs in or refreshes for a new token.
    """

    def __init__(self, keys: KeyLookup, *, issuer: str, audience: str, statuses: UserStatuses) -> None:
        super().__init__(keys, issuer=issuer, audience=audience)
        self.statuses = statuses

    def principal(self, token: str) -> SessionPrincipal:
        claims = self.claims(token)
        return self._principal(claims, self.statuses.lookup(int(claims["sub"])))

    async def principal_async(self, token: str) -> SessionPrincipal:
        """The gateway's check of every request: answered in place from memory when the user's
        status is cached (the signature check is CPU work), from the database on the event loop
        otherwise."""
        claims = self.claims(token)  # identity's own key ring: never any I/O
        return self._principal(claims, await self.statuses.lookup_async(int(claims["sub"])))

    @staticmethod
    def _principal(claims: dict, status: UserStatus | None) -> SessionPrincipal:
        if status is None or not status.is_active:
            raise InvalidToken("the account is deactivated or no longer exists")
        if claims["role"] != status.role or (
            # Issued at the change or before: the same comparison as chassis.revocations'
            # (``iat`` keeps milliseconds; a token issued after the change has a later one).
            status.role_changed_at is not None and claims["iat"] <= status.role_changed_at
        ):
            raise InvalidToken("the account's role has changed; log in again")
        if claims.get("sid") in status.ended_sessions:
            raise InvalidToken("the session has ended")
        return SessionPrincipal(id=int(claims["sub"]), role=status.role, session_id=_session_id(claims))
