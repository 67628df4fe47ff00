"""identity-service use cases for sessions: log in, refresh (with rotation), log out.

A session is a family of refresh tokens: login starts one, each refresh replaces the
presented token by a new one of the same family. Presenting a replaced token again
means two parties hold the session (one of them stole it), so the whole family is
revoked (OAuth 2.0 Security BCP, refresh token rotation).
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from chassis.db import Database
from chassis.timezones import utcnow
from identity.domain import normalise_email
from identity.errors import AuthenticationFailed, InvalidCredentials, InvalidRefreshToken, RefreshTokenReused
from identity.models import RefreshToken, User
from identity.security import IssuedTokens, Passwords, TokenIssuer, new_refresh_token, refresh_token_digest
from identity.throttle import LoginThrottle

log = logging.getLogger("identity.sessions")


def _issue(
    session: Session, tokens: TokenIssuer, *, user_id: int, role: str, family_id: uuid.UUID, now: datetime
) -> tuple[IssuedTokens, RefreshToken]:
    refresh = new_refresh_token()
    row = RefreshToken(
        token_hash=refresh_token_digest(refresh),
        family_id=family_id,
        user_id=user_id,
        issued_at=now,
        expires_at=tokens.refresh_expiry(now),
    )
    session.add(row)
    session.flush()
    access = tokens.access_token(user_id=user_id, role=role, session_id=family_id, now=now)
    return IssuedTokens(access=access, refresh=refresh, expires_in=tokens.access_ttl), row


def _revoke_family(session: Session, family_id: uuid.UUID, now: datetime) -> None:
    session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )


def log_in(
    db: Database,
    passwords: Passwords,
    tokens: TokenIssuer,
    throttle: LoginThrottle,
    *,
    email: str,
    password: str,
    address: str,
) -> IssuedTokens:
    """Tokens for the active account with these credentials, else ``InvalidCredentials``.

    Every refusal takes one password verification and says the same thing, so neither
    the answer nor its timing tells whether the email has an account. Each refusal counts
    as a failed login of the account and of ``address``; past the throttle's limits the
    answer is ``LoginThrottled`` without any check, for the right password too.
    """
    attempt = throttle.begin(db, email=email, address=address)
    with db.sessions() as session:
        user = session.scalars(select(User).where(User.email == normalise_email(email))).one_or_none()
    if user is None:
        passwords.verify_decoy(password)
        raise InvalidCredentials()
    # Verified outside any transaction: hashing is slow, and should not hold a connection.
    if not passwords.verify(user.password_hash, password) or not user.is_active:
        raise InvalidCredentials()
    throttle.succeeded(db, attempt)
    with db.transaction() as session:
        if passwords.needs_rehash(user.password_hash):
            session.execute(
                update(User).where(User.id == user.id).values(password_hash=passwords.hash(password))
            )
        issued, _ = _issue(
            session, tokens, user_id=user.id, role=user.role, family_id=uuid.uuid4(), now=utcnow()
        )
    return issued


def refresh_session(db: Database, tokens: TokenIssuer, *, refresh_token: str) -> IssuedTokens:
    """New tokens for a valid refresh token, which is used up; a reused token revokes its family."""
    with db.transaction() as session:
        outcome = _rotate(session, tokens, refresh_token_digest(refresh_token))
    # Raised only now, after the commit: a reuse must revoke the family even though it fails.
    if isinstance(outcome, AuthenticationFailed):
        raise outcome
    return outcome


def _rotate(session: Session, tokens: TokenIssuer, digest: bytes) -> IssuedTokens | AuthenticationFailed:
    now = utcnow()
    # The row lock makes concurrent refreshes with one token take turns: the second one
    # sees the token used and is treated as reuse, so at most one of them succeeds.
    presented = session.scalars(
        select(RefreshToken).where(RefreshToken.token_hash == digest).with_for_update()
    ).one_or_none()
    if presented is None or presented.revoked_at is not None:
        return InvalidRefreshToken()
    if presented.used_at is not None:
        _revoke_family(session, presented.family_id, now)
        log.warning(
            "refresh token reuse: session revoked",
            extra={"user_id": presented.user_id, "family_id": str(presented.family_id)},
        )
        return RefreshTokenReused()
    if presented.expires_at <= now:
        return InvalidRefreshToken()
    user = session.get(User, presented.user_id)
    if user is None or not user.is_active:
        _revoke_family(session, presented.family_id, now)
        return InvalidRefreshToken()
    issued, successor = _issue(
        session, tokens, user_id=user.id, role=user.role, family_id=presented.family_id, now=now
    )
    presented.used_at = now
    presented.replaced_by_id = successor.id
    return issued


def log_out(db: Database, *, user_id: int, refresh_token: str) -> None:
    """End the session of ``refresh_token`` if it is one of ``user_id``'s; otherwise do nothing.

    A token of someone else (or no token at all) is ignored rather than refused, so the
    answer never tells whether a token exists.
    """
    with db.transaction() as session:
        family_id = session.scalar(
            select(RefreshToken.family_id).where(
                RefreshToken.token_hash == refresh_token_digest(refresh_token),
                RefreshToken.user_id == user_id,
            )
        )
        if family_id is not None:
            _revoke_family(session, family_id, utcnow())
