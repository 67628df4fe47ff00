"""Login throttling: failed logins counted per account and per client address (spec/API.md).

An account with ``account_failures`` failed logins within ``window`` answers 429 (with the
seconds until the oldest of them leaves the window) before any password is checked, the right
one included; so does a client address with ``address_failures`` failures, a much higher
number, so that a clinic behind one address is not locked out by one forgetful user while a
password sprayer is. Successful logins count for nothing.

The counts live in identity's database (``login_failures``), so every replica sees the same
ones. An attempt is recorded *before* its password is checked and deleted when the password was
right: concurrent guesses at one account are counted while their slow hashes run, and a
per-account advisory lock makes check-and-record one step, so no burst gets past the limit.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, bindparam, delete, func, insert, select
from sqlalchemy.orm import Session
from starlette.requests import Request

from chassis.db import Database
from identity.adapters import metrics
from identity.domain import normalise_email
from identity.errors import LoginThrottled
from identity.models import LoginFailure

FAILURES = LoginFailure.__table__


def account_key(email: str) -> bytes:
    """What identifies an account in ``login_failures``: a digest of its lower-cased email."""
    return hashlib.sha256(normalise_email(email).encode()).digest()


def address_key(address: str, ipv6_prefix: int = 64) -> str:
    """A client address as it is counted: IPv4 as is, IPv6 as its ``/ipv6_prefix`` network.

    One IPv6 subscriber usually holds a whole /64, so counting single IPv6 addresses would let
    one attacker rotate through billions of them. Anything that is not an IP address (a test
    client's name) is counted as given.
    """
    try:
        ip = ipaddress.ip_address(address.strip().strip("[]"))
    except ValueError:
        return address[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, ipv6_prefix), strict=False))
    return str(ip)


def client_address(request: Request, trusted_proxy_count: int) -> str:
    """The address of the client behind ``trusted_proxy_count`` proxies that append to X-Forwarded-For.

    The gateway (Traefik) drops any X-Forwarded-For a client sends and sets the connection's
    address, so with the default of 1 the last entry is the client as the gateway saw it. A
    proxy in front of the gateway that the gateway trusts adds one more. With 0, or when the
    header has fewer entries than trusted proxies (a request that did not come through them),
    the connection's own address counts.
    """
    if trusted_proxy_count > 0:
        forwarded = [
            part.strip()
            for header in request.headers.getlist("x-forwarded-for")
            for part in header.split(",")
            if part.strip()
        ]
        if len(forwarded) >= trusted_proxy_count:
            return forwarded[-trusted_proxy_count]
    return request.client.host if request.client else "unknown"


@dataclass(frozen=True, slots=True)
class Attempt:
    """A login attempt in progress: counted as a failure unless ``succeeded`` is called."""

    failure_id: int


@dataclass(frozen=True, slots=True)
class LoginThrottle:
    """The throttling rules, from identity's settings."""

    window_seconds: float = 900.0
    account_failures: int = 5
    address_failures: int = 100
    ipv6_prefix: int = 64

    def begin(self, db: Database, *, email: str, address: str) -> Attempt:
        """Record an attempt at ``email``'s account from ``address``, or raise ``LoginThrottled``."""
        account = account_key(email)
        counted_address = address_key(address, self.ipv6_prefix)
        with db.transaction() as session:
            # One attempt at a time per account checks and records (held for microseconds).
            session.execute(select(func.pg_advisory_xact_lock(_lock_id(account))))
            now = session.scalar(select(func.clock_timestamp()))
            since = now - timedelta(seconds=self.window_seconds)
            waits = [
                self._wait(session, FAILURES.c.account_key == account, self.account_failures, since),
                self._wait(session, FAILURES.c.address == counted_address, self.address_failures, since),
            ]
            longest = max((wait for wait in waits if wait is not None), default=None)
            if longest is not None:
                metrics.LOGIN_THROTTLES.inc()
                raise LoginThrottled(max(1, math.ceil(longest.total_seconds())))
            failure_id = session.scalar(
                insert(FAILURES).values(account_key=account, address=counted_address).returning(FAILURES.c.id)
            )
        return Attempt(failure_id)

    def succeeded(self, db: Database, attempt: Attempt) -> None:
        """The password was right: the attempt was no failure."""
        with db.transaction() as session:
            session.execute(delete(FAILURES).where(FAILURES.c.id == attempt.failure_id))

    @staticmethod
    def _wait(
        session: Session, condition: ColumnElement[bool], limit: int, since: datetime
    ) -> timedelta | None:
        # The limit-th most recent failure in the window: while it is in the window, the count
        # is at the limit; the throttle lifts when it leaves.
        oldest_counted = session.scalar(
            select(FAILURES.c.failed_at)
            .where(condition, FAILURES.c.failed_at > since)
            .order_by(FAILURES.c.failed_at.desc())
            .offset(limit - 1)
            .limit(1)
        )
        if oldest_counted is None:
            return None
        return oldest_counted - since

    def prune(self, db: Database) -> int:
        """Delete failures older than the window (nothing counts them any more); how many."""
        with db.transaction() as session:
            result = session.execute(
                delete(FAILURES).where(
                    FAILURES.c.failed_at
                    < func.clock_timestamp() - bindparam("window", timedelta(seconds=self.window_seconds))
                )
            )
        return result.rowcount or 0


def _lock_id(account: bytes) -> int:
    # An advisory lock key is a signed 64-bit integer: the digest's first 8 bytes.
    return int.from_bytes(account[:8], "big", signed=True)
