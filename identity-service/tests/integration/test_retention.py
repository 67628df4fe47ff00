"""identity's retention: ended sessions' refresh tokens, sealed successors and old login failures go;
live sessions (and their used tokens, for reuse detection) stay."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, insert, select, update
from support import bearer

from identity.adapters.retention import forget_sealed_successors, purge_ended_sessions
from identity.adapters.security import refresh_token_digest
from identity.adapters.throttle import account_key
from identity.models import LoginFailure, LoginSession, RefreshToken, User


def refresh(client, token):
    return client.post("/api/auth/token/refresh/", json={"refresh": token}).json()


def family_of(db, token: str):
    with db.sessions() as session:
        return session.scalar(
            select(RefreshToken.family_id).where(RefreshToken.token_hash == refresh_token_digest(token))
        )


def tokens_of(db, family_id) -> int:
    with db.sessions() as session:
        return session.scalar(select(func.count()).where(RefreshToken.family_id == family_id))


def age_family(db, family_id, days: float) -> None:
    """Move every time of the session and its refresh tokens ``days`` into the past."""
    shift = timedelta(days=days)
    with db.transaction() as session:
        session.execute(
            update(LoginSession)
            .where(LoginSession.id == family_id)
            .values(
                started_at=LoginSession.started_at - shift,
                expires_at=LoginSession.expires_at - shift,
                ended_at=LoginSession.ended_at - shift,
            )
        )
        session.execute(
            update(RefreshToken)
            .where(RefreshToken.family_id == family_id)
            .values(
                issued_at=RefreshToken.issued_at - shift,
                expires_at=RefreshToken.expires_at - shift,
                used_at=RefreshToken.used_at - shift,
                revoked_at=RefreshToken.revoked_at - shift,
            )
        )


def test_the_tokens_of_a_session_ended_long_ago_go_and_live_or_recent_ones_stay(client, api, app):
    db = app.state.db
    user, first = api.signed_in()
    # Logged out 31 days ago.
    ended = refresh(client, first["refresh"])
    client.post("/api/auth/logout/", json={"refresh": ended["refresh"]}, headers=bearer(ended))
    ended_family = family_of(db, first["refresh"])
    age_family(db, ended_family, 31)
    # Logged out yesterday.
    recent = api.login(user["email"])
    client.post("/api/auth/logout/", json={"refresh": recent["refresh"]}, headers=bearer(recent))
    recent_family = family_of(db, recent["refresh"])
    age_family(db, recent_family, 1)
    # Live, with used tokens from long ago (old rotations) and a fresh one.
    live = api.login(user["email"])
    live_family = family_of(db, live["refresh"])
    rotated = refresh(client, refresh(client, live["refresh"])["refresh"])
    with db.transaction() as session:
        session.execute(
            update(RefreshToken)
            .where(RefreshToken.family_id == live_family, RefreshToken.used_at.is_not(None))
            .values(used_at=RefreshToken.used_at - timedelta(days=40))
        )

    assert purge_ended_sessions(db, timedelta(days=30)) >= 1
    assert tokens_of(db, ended_family) == 0
    assert tokens_of(db, recent_family) == 1
    assert tokens_of(db, live_family) == 3
    assert client.post("/api/auth/token/refresh/", json={"refresh": rotated["refresh"]}).status_code == 200


def test_a_session_whose_tokens_all_expired_long_ago_goes(api, app):
    db = app.state.db
    _, tokens = api.signed_in()
    family = family_of(db, tokens["refresh"])
    age_family(db, family, 14 + 31)
    assert purge_ended_sessions(db, timedelta(days=30)) >= 1
    assert tokens_of(db, family) == 0


def test_sealed_successors_are_forgotten_once_the_grace_period_is_over(client, api, app):
    db = app.state.db
    _, tokens = api.signed_in()
    refresh(client, tokens["refresh"])
    digest = refresh_token_digest(tokens["refresh"])

    def sealed():
        with db.sessions() as session:
            return session.scalar(
                select(RefreshToken.successor_sealed).where(RefreshToken.token_hash == digest)
            )

    forget_sealed_successors(db, timedelta(seconds=10))
    assert sealed() is not None
    with db.transaction() as session:
        session.execute(
            update(RefreshToken)
            .where(RefreshToken.token_hash == digest)
            .values(used_at=RefreshToken.used_at - timedelta(seconds=11))
        )
    assert forget_sealed_successors(db, timedelta(seconds=10)) >= 1
    assert sealed() is None


def test_the_service_job_prunes_login_failures_older_than_the_window(app):
    db = app.state.db
    key = account_key("pruned@example.com")
    with db.transaction() as session:
        for minutes in (16, 1):
            session.execute(
                insert(LoginFailure).values(
                    account_key=key, address="198.18.99.1", failed_at=func.now() - timedelta(minutes=minutes)
                )
            )
    deleted = app.state.retention.run_once()
    assert set(deleted) >= {
        "published outbox events",
        "processed events",
        "refresh tokens of ended sessions",
        "sealed refresh successors",
        "login failures",
    }
    with db.sessions() as session:
        ages = session.scalars(select(LoginFailure.failed_at).where(LoginFailure.account_key == key)).all()
    assert len(ages) == 1


def test_users_are_never_touched(app):
    with app.state.db.sessions() as session:
        before = session.scalar(select(func.count()).select_from(User))
    app.state.retention.run_once()
    with app.state.db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(User)) == before
