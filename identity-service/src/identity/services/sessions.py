"""identity-service use cases for sessions: log in, refresh (with rotation), log out, end.

A session (``LoginSession``) is one login and its family of refresh tokens: login
starts one, each refresh replaces the presented token by a new one of the same family.
Presenting a replaced token again means two parties hold the session (one of them stole
it), so the session ends (OAuth 2.0 Security BCP, refresh token rotation) — unless it
comes within a short grace period of the rotation while the successor is still unused
(two tabs refreshing at once): then it gets the same successor, kept sealed for that
period. A session ends at once everywhere: its refresh tokens are revoked, the gateway's
token check refuses its access tokens (a trigger NOTIFYs every replica), and
``identity.session.revoked`` tells the other services to refuse them too. Refreshing
never extends a session past its absolute lifetime (``SESSION_MAX_AGE_SECONDS``).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.orm import Session

from chassis.db import Database
from chassis.messaging import add_event
from chassis.timezones import utcnow
from identity.adapters import metrics
from identity.adapters.security import (
    IssuedTokens,
    Passwords,
    TokenIssuer,
    new_refresh_token,
    open_successor,
    refresh_token_digest,
    seal_successor,
)
from identity.adapters.throttle import LoginThrottle
from identity.domain import normalise_email
from identity.errors import AuthenticationFailed, InvalidCredentials, InvalidRefreshToken, RefreshTokenReused
from identity.events import PRODUCER
from identity.models import LoginSession, RefreshToken, User

log = logging.getLogger("identity.sessions")


SESSION_REVOKED = "identity.session.revoked"


def _issue(
    session: Session, tokens: TokenIssuer, *, user_id: int, role: str, login: LoginSession, now: datetime
) -> tuple[IssuedTokens, RefreshToken]:
    refresh = new_refresh_token()
    row = RefreshToken(
        token_hash=refresh_token_digest(refresh),
        family_id=login.id,
        user_id=user_id,
        issued_at=now,
        expires_at=tokens.refresh_expiry(now, login.expires_at),
    )
    session.add(row)
    session.flush()
    access = tokens.access_token(user_id=user_id, role=role, session_id=login.id, now=now)
    return IssuedTokens(access=access, refresh=refresh, expires_in=tokens.access_ttl), row


def end_sessions(session: Session, which: ColumnElement[bool], *, reason: str) -> Sequence[uuid.UUID]:
    """End the live sessions matching ``which``, in the caller's transaction: their refresh
    tokens are revoked and each end is published (``identity.session.revoked``)."""
    now = utcnow()
    ended = session.execute(
        update(LoginSession)
        .where(which, LoginSession.ended_at.is_(None))
        .values(ended_at=now, end_reason=reason)
        .returning(LoginSession.id, LoginSession.user_id)
    ).all()
    if not ended:
        return []
    session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id.in_([row.id for row in ended]), RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    for row in ended:
        add_event(
            session,
            SESSION_REVOKED,
            {"session_id": row.id, "user_id": row.user_id, "revoked_at": now, "reason": reason},
            producer=PRODUCER,
        )
    return [row.id for row in ended]


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
        metrics.LOGIN_FAILURES.inc()
        raise InvalidCredentials()
    # Verified outside any transaction: hashing is slow, and should not hold a connection.
    if not passwords.verify(user.password_hash, password) or not user.is_active:
        metrics.LOGIN_FAILURES.inc()
        raise InvalidCredentials()
    with db.transaction() as session:
        # The account again, locked until this login commits: a password change or deactivation
        # committed during the check refuses it (the password checked is no longer the account's),
        # and one that comes after it waits for this commit, then ends this session too.
        account = session.execute(
            select(User.password_hash, User.is_active, User.role)
            .where(User.id == user.id)
            .with_for_update(read=True)
        ).one_or_none()
        if account is None or account.password_hash != user.password_hash or not account.is_active:
            metrics.LOGIN_FAILURES.inc()
            raise InvalidCredentials()
        if passwords.needs_rehash(user.password_hash):
            session.execute(
                update(User).where(User.id == user.id).values(password_hash=passwords.hash(password))
            )
        now = utcnow()
        login = LoginSession(
            id=uuid.uuid4(), user_id=user.id, started_at=now, expires_at=tokens.session_expiry(now)
        )
        session.add(login)
        issued, _ = _issue(session, tokens, user_id=user.id, role=account.role, login=login, now=now)
    throttle.succeeded(db, attempt)
    return issued


def refresh_session(db: Database, tokens: TokenIssuer, *, refresh_token: str) -> IssuedTokens:
    """New tokens for a valid refresh token, which is used up; a reused token revokes its family.

    Within the grace period after a rotation (``REFRESH_REUSE_GRACE_SECONDS``), while the
    successor is unused, the used token is answered with that same successor (and a new access
    token) instead: two tabs refreshing at once keep their session.
    """
    with db.transaction() as session:
        outcome = _rotate(session, tokens, refresh_token)
    # Raised only now, after the commit: a reuse must revoke the family even though it fails.
    if isinstance(outcome, AuthenticationFailed):
        raise outcome
    return outcome


def _rotate(session: Session, tokens: TokenIssuer, refresh_token: str) -> IssuedTokens | AuthenticationFailed:
    now = utcnow()
    digest = refresh_token_digest(refresh_token)
    # The session's row first, then the token's: the order in which a logout or a deactivation
    # (``end_sessions``) locks them, so a refresh that ends its session (a reuse, an expiry) waits
    # for one or makes it wait, and never deadlocks with it. The session's lock also makes
    # concurrent refreshes of one session take turns: the second one sees the token used, and
    # gets the first one's successor (within the grace period) or is treated as reuse.
    family = select(RefreshToken.family_id).where(RefreshToken.token_hash == digest).scalar_subquery()
    login = session.scalars(
        select(LoginSession).where(LoginSession.id == family).with_for_update(key_share=True)
    ).one_or_none()
    presented = session.scalars(
        select(RefreshToken).where(RefreshToken.token_hash == digest).with_for_update()
    ).one_or_none()
    if presented is None or presented.revoked_at is not None:
        return InvalidRefreshToken()
    this_session = LoginSession.id == presented.family_id
    if presented.used_at is not None:
        again = _same_successor(session, tokens, presented, refresh_token, now)
        if again is not None:
            return again
        end_sessions(session, this_session, reason="refresh_token_reused")
        log.warning(
            "refresh token reuse: session revoked",
            extra={"user_id": presented.user_id, "family_id": str(presented.family_id)},
        )
        return RefreshTokenReused()
    if presented.expires_at <= now or login is None or login.ended_at is not None:
        return InvalidRefreshToken()
    if login.expires_at <= now:
        end_sessions(session, this_session, reason="expired")
        return InvalidRefreshToken()
    user = session.get(User, presented.user_id)
    if user is None or not user.is_active:
        end_sessions(session, this_session, reason="deactivated")
        return InvalidRefreshToken()
    # The new tokens' time is taken after the role was read: a role change that committed before
    # that read is then older than their ``iat`` (tokens issued up to one are refused).
    now = utcnow()
    issued, successor = _issue(session, tokens, user_id=user.id, role=user.role, login=login, now=now)
    presented.used_at = now
    presented.replaced_by_id = successor.id
    if tokens.reuse_grace:
        presented.successor_sealed = seal_successor(refresh_token, issued.refresh)
    return issued


def _same_successor(
    session: Session, tokens: TokenIssuer, presented: RefreshToken, refresh_token: str, now: datetime
) -> IssuedTokens | None:
    """The successor ``presented`` was rotated into, if this is a concurrent refresh of it.

    That is: within the grace period after the rotation, and the successor neither used,
    revoked nor expired (a successor already used means two parties hold the token: reuse).
    Why not a new token of the family instead: the first caller's successor would then have to
    die or a second live branch of the session would start; with the same successor there is
    one branch, and the first use of it ends the grace of its predecessor.
    """
    if presented.successor_sealed is None or presented.used_at is None:
        return None
    if now - presented.used_at > tokens.reuse_grace or presented.replaced_by_id is None:
        return None
    successor = session.get(RefreshToken, presented.replaced_by_id, with_for_update=True)
    if successor is None or successor.used_at is not None or successor.revoked_at is not None:
        return None
    if successor.expires_at <= now:
        return None
    user = session.get(User, presented.user_id)
    if user is None or not user.is_active:
        return None
    refresh = open_successor(refresh_token, presented.successor_sealed)
    if refresh is None:
        return None
    # Its time taken after the role was read, as in ``_rotate``.
    access = tokens.access_token(
        user_id=user.id, role=user.role, session_id=presented.family_id, now=utcnow()
    )
    return IssuedTokens(access=access, refresh=refresh, expires_in=tokens.access_ttl)


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
            end_sessions(session, LoginSession.id == family_id, reason="logout")
