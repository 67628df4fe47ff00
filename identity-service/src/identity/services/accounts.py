"""identity-service use cases for accounts: registration, profiles, admin management.

Each use case is one transaction (``db.transaction()``). Session use cases (login, refresh,
logout) live in ``services/sessions.py``; reads in ``queries.py``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from chassis.db import Database
from chassis.timezones import utcnow
from identity.adapters import metrics
from identity.adapters.security import Passwords
from identity.adapters.throttle import LoginThrottle
from identity.domain import (
    ADMIN,
    AccountChange,
    locks_out_acting_admin,
    may_self_register_as,
    password_problems,
)
from identity.errors import (
    AccountDeactivated,
    AdminLockout,
    CurrentPasswordInvalid,
    EmailTaken,
    RoleNotAllowed,
    UserNotFound,
    WeakPassword,
)
from identity.events import UserFactKind, publish_user_fact, shared_changes
from identity.models import LoginSession, User
from identity.services.sessions import end_sessions

log = logging.getLogger("identity.services")


def record_user_fact(session: Session, user: User, kind: UserFactKind, changed: Sequence[str] = ()) -> None:
    """A user registered, was updated or was deactivated: tell the other services.

    Called inside the transaction of the change, after it is applied to ``user``. Each
    fact takes the next ``revision`` of the user and goes to the outbox with the change. An
    update of fields no other service keeps (the phone alone) is no fact for them: no event.
    """
    if kind == "updated":
        changed = shared_changes(changed)
        if not changed:
            return
    if kind != "registered":
        user.revision += 1
    session.flush()
    publish_user_fact(session, user, kind, changed)


def _require_strong(password: str, email: str) -> None:
    problems = password_problems(password, email)
    if problems:
        raise WeakPassword("password", problems)


def _is_email_taken(exc: IntegrityError) -> bool:
    diag = getattr(exc.orig, "diag", None)
    return getattr(diag, "constraint_name", None) == "uq_users_email"


def register_user(
    db: Database,
    passwords: Passwords,
    *,
    email: str,
    password: str,
    full_name: str,
    role: str,
    phone: str | None,
) -> User:
    """Create an account by public registration (patient or doctor). ``email`` is normalised."""
    if not may_self_register_as(role):
        raise RoleNotAllowed("role", ["Registration creates a patient or a doctor account."])
    _require_strong(password, email)
    password_hash = passwords.hash(password)  # before the transaction: it is the slow part
    try:
        with db.transaction() as session:
            user = User(
                email=email,
                password_hash=password_hash,
                full_name=full_name,
                phone=phone,
                role=role,
                is_active=True,
            )
            session.add(user)
            session.flush()
            record_user_fact(session, user, "registered")
    except IntegrityError as exc:
        # No check-then-insert: the unique constraint decides, so two concurrent
        # registrations of one email give one 201 and one 409.
        if _is_email_taken(exc):
            raise EmailTaken() from exc
        raise
    return user


@dataclass(frozen=True, slots=True)
class AdminAccount:
    user: User
    created: bool


def create_admin(
    db: Database, passwords: Passwords, *, email: str, password: str, full_name: str
) -> AdminAccount:
    """Create an admin account unless ``email`` is taken (then return the existing account).

    Safe when several replicas run it at once: INSERT ... ON CONFLICT DO NOTHING.
    """
    _require_strong(password, email)
    password_hash = passwords.hash(password)
    with db.transaction() as session:
        created = session.scalars(
            insert(User)
            .values(email=email, password_hash=password_hash, full_name=full_name, role=ADMIN, is_active=True)
            .on_conflict_do_nothing(index_elements=[User.email])
            .returning(User)
        ).one_or_none()
        if created is not None:
            record_user_fact(session, created, "registered")
            return AdminAccount(user=created, created=True)
        existing = session.scalars(select(User).where(User.email == email)).one()
        return AdminAccount(user=existing, created=False)


def _locked_user(session: Session, user_id: int) -> User:
    # The row lock serialises changes to one account (revision numbers stay in order). FOR NO KEY
    # UPDATE, not FOR UPDATE: a refresh inserting a token of this user (its foreign key takes
    # FOR KEY SHARE on this row) must not wait for it while holding its session, which the
    # change then ends (end_sessions): the two would deadlock.
    user = session.get(User, user_id, with_for_update={"key_share": True})
    if user is None:
        raise UserNotFound(user_id)
    return user


def _apply_profile(user: User, changes: dict[str, Any], fields: tuple[str, ...]) -> list[str]:
    changed = []
    for field in fields:
        if field in changes and getattr(user, field) != changes[field]:
            setattr(user, field, changes[field])
            changed.append(field)
    return changed


def update_own_account(
    db: Database,
    passwords: Passwords,
    throttle: LoginThrottle,
    *,
    user_id: int,
    session_id: uuid.UUID | None,
    changes: dict[str, Any],
    address: str,
) -> User:
    """Change one's own name, phone or password (the current password is required for the latter).

    ``changes`` holds only the fields the caller sent. A new password ends every other
    session of the account; the caller's own session (``session_id``) stays signed in.
    A wrong current password counts as a failed login of the account (from ``address``),
    so a stolen access token cannot guess it faster than the login could.
    """
    with db.transaction() as session:
        user = _locked_user(session, user_id)
        # The token was checked when the request came in; a deactivation may have committed since.
        if not user.is_active:
            raise AccountDeactivated()
        if changes.get("password") is not None:
            current = changes.get("current_password")
            if current is None:
                raise CurrentPasswordInvalid(
                    "current_password", ["Enter your current password to change it."]
                )
            attempt = throttle.begin(db, email=user.email, address=address)
            if not passwords.verify(user.password_hash, current):
                metrics.LOGIN_FAILURES.inc()
                raise CurrentPasswordInvalid("current_password", ["The current password is not correct."])
            throttle.succeeded(db, attempt)
            _require_strong(changes["password"], user.email)
            user.password_hash = passwords.hash(changes["password"])
            others = LoginSession.user_id == user.id
            if session_id is not None:
                others &= LoginSession.id != session_id
            end_sessions(session, others, reason="password_changed")
        changed = _apply_profile(user, changes, ("full_name", "phone"))
        if changed:
            record_user_fact(session, user, "updated", changed)
    return user


def _deactivate(session: Session, user: User) -> None:
    user.is_active = False
    user.deactivated_at = utcnow()
    end_sessions(session, LoginSession.user_id == user.id, reason="deactivated")
    record_user_fact(session, user, "deactivated")


def update_user(db: Database, *, actor_id: int, user_id: int, changes: dict[str, Any]) -> User:
    """An admin changes an account's name, phone, role or active flag.

    ``is_active: false`` deactivates exactly like ``deactivate_user``; ``true`` reactivates.
    """
    if locks_out_acting_admin(
        actor_id, user_id, AccountChange(changes.get("role"), changes.get("is_active"))
    ):
        raise AdminLockout()
    with db.transaction() as session:
        user = _locked_user(session, user_id)
        changed = _apply_profile(user, changes, ("full_name", "phone", "role"))
        if "role" in changed:
            # Every token issued up to now is refused from the commit on, whatever role it names
            # (adapters/token_verifier.py); taken under the row lock, after any login that read
            # the old role, by the clock ``iat`` is taken by.
            user.role_changed_at = utcnow()
        deactivating = changes.get("is_active") is False and user.is_active
        if changes.get("is_active") is True and not user.is_active:
            user.is_active = True
            user.deactivated_at = None
            changed.append("is_active")
        if changed:
            record_user_fact(session, user, "updated", changed)
        if deactivating:
            _deactivate(session, user)
    return user


def deactivate_user(db: Database, *, actor_id: int, user_id: int) -> None:
    """Deactivate an account (the record stays); its sessions end at once. Idempotent."""
    if actor_id == user_id:
        raise AdminLockout()
    with db.transaction() as session:
        user = _locked_user(session, user_id)
        if user.is_active:
            _deactivate(session, user)
