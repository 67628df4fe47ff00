"""Token revocations: what identity took back, recorded from its events and checked on every request."""

from __future__ import annotations

import dataclasses
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select

from chassis import revocations as revocations_module
from chassis.auth import InvalidToken
from chassis.errors import ProblemException
from chassis.messaging import Envelope
from chassis.revocations import (
    RevocationPoller,
    TokenRevocation,
    TokenRevocations,
    TokenRevoked,
    with_token_revocations,
)


def claims(user_id: int = 7, role: str = "patient", sid: str | None = None, iat: float | None = None) -> dict:
    return {"sub": str(user_id), "role": role, "sid": sid or str(uuid.uuid4()), "iat": iat or time.time()}


def loaded() -> TokenRevocations:
    revocations = TokenRevocations()
    revocations.loaded = True
    return revocations


def test_a_token_of_an_ended_session_is_refused_and_other_sessions_are_not():
    revocations = loaded()
    ended = str(uuid.uuid4())
    revocations.add(1, 7, ended, None, time.time())
    with pytest.raises(TokenRevoked, match="session has ended"):
        revocations.check(claims(sid=ended))
    revocations.check(claims(sid=str(uuid.uuid4())))


def test_a_role_change_refuses_earlier_tokens_of_the_old_role_only():
    revocations = loaded()
    changed_at = time.time()
    revocations.add(1, 7, None, "patient", changed_at)  # the admin was demoted to patient
    with pytest.raises(TokenRevoked, match="role has changed"):
        revocations.check(claims(role="admin", iat=int(changed_at) - 60))
    revocations.check(claims(role="patient", iat=int(changed_at)))  # logged in again at once
    revocations.check(claims(user_id=8, role="admin", iat=int(changed_at) - 60))  # someone else


def test_a_role_changed_and_changed_back_refuses_the_tokens_of_the_role_in_between():
    revocations = loaded()
    now = time.time()
    revocations.add(1, 7, None, "admin", now - 100)
    revocations.add(2, 7, None, "patient", now - 10)
    with pytest.raises(InvalidToken):
        revocations.check(claims(role="admin", iat=now - 50))  # issued while an admin
    with pytest.raises(InvalidToken):
        revocations.check(claims(role="patient", iat=now - 200))  # issued before the first change
    revocations.check(claims(role="patient", iat=now))


def test_a_deactivation_refuses_every_earlier_token_and_none_issued_after_a_reactivation():
    revocations = loaded()
    deactivated_at = time.time() - 30
    revocations.add(1, 7, None, None, deactivated_at)
    with pytest.raises(TokenRevoked, match="deactivated"):
        revocations.check(claims(iat=deactivated_at - 1))
    revocations.check(claims(iat=deactivated_at + 5))


def test_nothing_is_judged_before_the_revocations_were_read():
    with pytest.raises(ProblemException) as refused:
        TokenRevocations().check(claims())
    assert refused.value.status == 503
    assert refused.value.code == "auth_unavailable"


def envelope(event_type: str, data: dict, occurred_at: datetime | None = None) -> Envelope:
    event = Envelope.new(event_type, data, producer="identity")
    if occurred_at is not None:
        event = dataclasses.replace(event, occurred_at=occurred_at)
    return event


def test_identity_events_become_revocations_and_every_process_reads_them(db):
    seen_by_service = []
    handlers = with_token_revocations(
        {"identity.user.updated": lambda session, event: seen_by_service.append(event.event_type)}
    )
    session_id = str(uuid.uuid4())
    demoted_at = datetime.now(UTC) - timedelta(seconds=30)
    events = [
        envelope(
            "identity.session.revoked",
            {
                "session_id": session_id,
                "user_id": 7,
                "revoked_at": demoted_at.isoformat(),
                "reason": "logout",
            },
        ),
        envelope("identity.user.updated", {"user_id": 8, "role": "patient", "changed": ["role"]}, demoted_at),
        envelope("identity.user.updated", {"user_id": 9, "full_name": "New", "changed": ["full_name"]}),
        envelope("identity.user.deactivated", {"user_id": 10, "role": "doctor"}, demoted_at),
    ]
    with db.transaction() as session:
        for event in events:
            handlers[event.event_type](session, event)
    assert seen_by_service == ["identity.user.updated", "identity.user.updated"]  # the service's own ran too

    revocations = TokenRevocations()
    RevocationPoller(db, revocations).load()
    earlier = demoted_at.timestamp() - 60
    for refused in (
        claims(7, sid=session_id),
        claims(8, role="admin", iat=earlier),
        claims(10, role="doctor", iat=earlier),
    ):
        with pytest.raises(TokenRevoked):
            revocations.check(refused)
    revocations.check(claims(9, iat=earlier))  # a rename revokes nothing
    with db.sessions() as session:
        assert session.scalar(select(TokenRevocation.id).where(TokenRevocation.user_id == 9)) is None


def session_ended(session_id: str, **times: datetime):
    """The row a consumer writes when user 7's session ``session_id`` ended (now, unless
    ``revoked_at``/``recorded_at`` say otherwise)."""
    values = {"user_id": 7, "session_id": uuid.UUID(session_id), "revoked_at": datetime.now(UTC), **times}
    return insert(TokenRevocation).values(**values)


def test_a_revocation_committed_after_a_newer_one_was_read_is_still_found(db):
    revocations = TokenRevocations()
    poller = RevocationPoller(db, revocations)
    poller.load()
    late = str(uuid.uuid4())
    # Recorded (clock time taken) before the last read, but committed only after it.
    with db.transaction() as session:
        session.execute(session_ended(late, recorded_at=datetime.now(UTC) - timedelta(seconds=20)))
    poller.load()
    with pytest.raises(TokenRevoked):
        revocations.check(claims(sid=late))


def test_a_revocation_whose_transaction_outlasts_the_overlap_is_still_found(db, monkeypatch):
    # A consumer's transaction records the revocation, then waits (a lock) longer than the
    # polls' overlap before it commits; the polls read on meanwhile.
    monkeypatch.setattr(revocations_module, "POLL_OVERLAP", timedelta(milliseconds=50))
    revocations = TokenRevocations()
    poller = RevocationPoller(db, revocations)
    poller.load()
    slow = str(uuid.uuid4())
    with db.transaction() as session:
        session.execute(session_ended(slow))
        for _ in range(3):
            time.sleep(0.1)
            poller.load()
    poller.load()
    with pytest.raises(TokenRevoked):
        revocations.check(claims(sid=slow))


def test_the_poller_thread_picks_up_new_revocations_and_purges_old_ones(db):
    from chassis.testkit import wait_until

    old = datetime.now(UTC) - timedelta(days=2)
    with db.transaction() as session:
        session.execute(session_ended(str(uuid.uuid4()), revoked_at=old, recorded_at=old))
    revocations = TokenRevocations()
    poller = RevocationPoller(db, revocations, interval=0.05)
    poller.load()
    poller.start()
    try:
        fresh = str(uuid.uuid4())
        with db.transaction() as session:
            session.execute(session_ended(fresh))
        wait_until(lambda: _refused(revocations, claims(sid=fresh)), timeout=5)

        def purged() -> bool:
            with db.sessions() as session:
                return (
                    session.scalar(select(TokenRevocation.id).where(TokenRevocation.revoked_at == old))
                    is None
                )

        wait_until(purged, timeout=5)
    finally:
        poller.stop()


def _refused(revocations: TokenRevocations, token_claims: dict) -> bool:
    try:
        revocations.check(token_claims)
    except TokenRevoked:
        return True
    return False
