"""Calendar feeds: each user's private feed URL, rotatable, its secret stored only hashed.

The secret in a feed's URL is HMAC-SHA256(key, nonce): the database keeps the nonce and the
secret's SHA-256 (to find the feed), so the feed's owner can be shown the URL again, while a
copy of the database without the key (``CALENDAR_FEED_KEY``) gives no working URL. Rotating
draws a new nonce: the old URL's hash matches nothing any more (404).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import threading

from sqlalchemy import or_, select
from sqlalchemy.dialects.postgresql import insert

from booking.adapters.ics import KEPT_FOR, FeedItem, in_feed
from booking.domain import ACTIVE_STATUSES
from booking.models import Appointment, CalendarFeed, CalendarFeedKey, User
from chassis.db import Database
from chassis.timezones import utcnow

log = logging.getLogger("booking.calendar")

NONCE_BYTES = 32


class FeedKeys:
    """The key feed secrets derive from: the configured one, else one kept in the database."""

    def __init__(self, db: Database, configured: str | None) -> None:
        self._db = db
        self._key = configured.encode() if configured else None
        self._lock = threading.Lock()

    def key(self) -> bytes:
        with self._lock:
            if self._key is None:
                log.warning(
                    "CALENDAR_FEED_KEY is not set: feed secrets derive from a key kept in the database"
                )
                with self._db.transaction() as session:
                    session.execute(
                        insert(CalendarFeedKey)
                        .values(id=1, key=secrets.token_bytes(32))
                        .on_conflict_do_nothing(index_elements=[CalendarFeedKey.id])
                    )
                    self._key = session.scalar(select(CalendarFeedKey.key).where(CalendarFeedKey.id == 1))
            return self._key


def _secret(key: bytes, nonce: bytes) -> str:
    digest = hmac.new(key, b"calendar-feed:" + nonce, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def feed_secret(db: Database, keys: FeedKeys, *, user_id: int, role: str, rotate: bool = False) -> str:
    """The secret of the user's feed (made on first use); with ``rotate``, a new one."""
    key = keys.key()
    with db.transaction() as session:
        feed = session.get(CalendarFeed, user_id, with_for_update=True)
        if feed is not None and not rotate:
            feed.role = role  # the feed follows the user's current role
            secret = _secret(key, feed.nonce)
            feed.secret_hash = _hash(secret)  # a new key (CALENDAR_FEED_KEY) makes a new URL
            return secret
        nonce = secrets.token_bytes(NONCE_BYTES)
        secret = _secret(key, nonce)
        values = {"role": role, "nonce": nonce, "secret_hash": _hash(secret), "rotated_at": utcnow()}
        session.execute(
            insert(CalendarFeed)
            .values(user_id=user_id, **values)
            .on_conflict_do_update(index_elements=[CalendarFeed.user_id], set_=values)
        )
        return secret


def feed_items(db: Database, keys: FeedKeys, secret: str) -> list[FeedItem] | None:
    """The appointments a feed shows, earliest first; None when no feed has this secret under the
    current key, or its user is no longer active in the feed's role (a role change ends it)."""
    now = utcnow()
    with db.transaction() as session:
        feed = session.scalar(select(CalendarFeed).where(CalendarFeed.secret_hash == _hash(secret)))
        if feed is None or not hmac.compare_digest(_secret(keys.key(), feed.nonce), secret):
            return None
        user = session.get(User, feed.user_id)
        if user is not None and (not user.is_active or user.role != feed.role):
            return None
        as_doctor = feed.role == "doctor"
        mine = Appointment.doctor_id if as_doctor else Appointment.patient_id
        other = User.__table__.alias("other")
        other_id = Appointment.patient_id if as_doctor else Appointment.doctor_id
        rows = session.execute(
            select(Appointment, other.c.full_name)
            .outerjoin(other, other.c.id == other_id)
            .where(
                mine == feed.user_id,
                Appointment.end_time >= now - KEPT_FOR,
                or_(
                    Appointment.status.in_(ACTIVE_STATUSES),
                    (Appointment.status == "cancelled") & (Appointment.updated_at >= now - KEPT_FOR),
                ),
            )
            .order_by(Appointment.start_time, Appointment.id)
        ).all()
    return [
        FeedItem(
            appointment_id=appointment.id,
            start_time=appointment.start_time,
            end_time=appointment.end_time,
            status=appointment.status,
            other_party=full_name or "",
            revision=appointment.revision,
            updated_at=appointment.updated_at,
        )
        for appointment, full_name in rows
        if in_feed(
            appointment.status, end_time=appointment.end_time, updated_at=appointment.updated_at, now=now
        )
    ]
