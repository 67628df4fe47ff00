"""Events identity-service publishes; their contracts are contracts/events/identity.user.*.schema.json.

Payloads carry what other services keep of a user (name, role, active flag; the email address,
which notification-service writes to) and the user's ``revision``, so consumers can ignore
stale, out-of-order updates. Never a phone number, a password or a hash: no other service uses
them (``phone`` was sent once and read by none; the schemas keep it as deprecated so that
events published before still validate).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from sqlalchemy.orm import Session

from chassis.messaging import add_event
from identity.models import User

PRODUCER = "identity"

UserFactKind = Literal["registered", "updated", "deactivated"]

# The fields of a user other services keep: a change of any other (the phone) is identity's alone.
SHARED_FIELDS = ("full_name", "role", "is_active")


def shared_changes(changed: Sequence[str]) -> list[str]:
    """Of the changed fields, those other services are told about."""
    return [field for field in changed if field in SHARED_FIELDS]


def _user_event_data(user: User, kind: UserFactKind, changed: Sequence[str]) -> dict[str, Any]:
    if kind == "deactivated":
        # The name too: the newest event must carry every fact consumers keep, or a rename
        # arriving after it (out of order) would be dropped as stale with its name unknown.
        return {
            "user_id": user.id,
            "full_name": user.full_name,
            "role": user.role,
            "revision": user.revision,
            "deactivated_at": user.deactivated_at,
        }
    data: dict[str, Any] = {
        "user_id": user.id,
        "full_name": user.full_name,
        "email": user.email,
        "role": user.role,
        "is_active": user.is_active,
        "revision": user.revision,
    }
    if kind == "registered":
        data["date_joined"] = user.date_joined
    else:
        data["changed"] = list(changed)
    return data


def publish_user_fact(session: Session, user: User, kind: UserFactKind, changed: Sequence[str] = ()) -> None:
    """Write ``identity.user.<kind>`` to the outbox, in the transaction of the change."""
    add_event(session, f"identity.user.{kind}", _user_event_data(user, kind, changed), producer=PRODUCER)
