"""Idempotency-Key (the IETF header) for POSTs that create or move something.

A client that retries a POST with the same ``Idempotency-Key`` (by the same user, with the
same body, within 24 hours) gets the first answer again, with ``Idempotent-Replayed: true``,
and nothing happens twice. The same key with another body is a 422; while the first request
with the key is still running, a 409. Without the header nothing changes.

One table per service (``idempotency_keys``, created by the service's own migration with
``create_idempotency_table``, its answers as text since ``store_answers_as_text``), unique
per (user, key). A request first *claims* its key (one autocommit upsert); the use case then
writes the answer into the claim **in the transaction of its effect** (``Recorder.record``), so
either both the effect and the answer are stored or neither is. The claim commits without
waiting for its WAL flush (``synchronous_commit`` off for that one statement): the effect's
own commit, in the same database, flushes the WAL past it, and a claim lost in a crash had no
effect yet. The answer is stored as the JSON text the route sends, so a replay is the first
answer byte for byte, and nothing is encoded twice.

A claim whose request died before its effect committed stays "in flight" only for ``LEASE``;
after that a retry with the same body runs again (nothing was applied). Each claim is known by
the time it was made (``created_at``), and the answer is written, or the claim given up, only
under the claim that ran: a request that outlived its lease, and whose key a retry took over
meanwhile, has its effect rolled back (``ClaimLost``, 409) and leaves the retry's claim alone.
A 4xx answer (nothing changed) is stored too and replayed; a 5xx or an unexpected failure gives
the key up, so a retry really retries. Rows older than ``RETENTION`` are deleted by the
service's retention job (``purge_idempotency_keys``) and never replayed meanwhile.

Use in a route::

    return await run_idempotently(request, key, caller.id, db,
        lambda record: services.book(..., record=record),
        serialize=lambda booked: AppointmentRead.model_validate(booked).model_dump_json(),
        status_code=201)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, TypeVar

from fastapi import Header, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import (
    BigInteger,
    DateTime,
    Integer,
    Interval,
    String,
    Text,
    bindparam,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Mapped, mapped_column

from chassis.db import Base, Database
from chassis.errors import PROBLEM_JSON, DomainError, ProblemException, problem

KEY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
RETENTION = timedelta(hours=24)
# How long a claim counts as in flight: longer than any request runs (they time out in seconds).
LEASE = timedelta(seconds=60)

T = TypeVar("T")

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias=KEY_HEADER,
        min_length=1,
        max_length=255,
        pattern=r"^[\x20-\x7e]+$",
        description=(
            "Makes a retry safe: the same key with the same body within 24 hours gets the first "
            "answer again (`Idempotent-Replayed: true`) and changes nothing; the same key with another "
            "body is 422, and 409 while the first request with it is still running. 1-255 printable "
            "ASCII characters."
        ),
    ),
]


class IdempotencyKey(Base):
    """One claimed key of one user: the request's fingerprint and, once answered, the answer."""

    __tablename__ = "idempotency_keys"

    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    # sha256 of method, path and body: the same key with another request is refused.
    fingerprint: Mapped[str] = mapped_column(String(64))
    # Null while in flight; the answer's status and JSON body (the text sent) once answered.
    status_code: Mapped[int | None] = mapped_column(Integer)
    response: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    leased_until: Mapped[datetime] = mapped_column(DateTime(timezone=True))


def create_idempotency_table(op: Any) -> None:
    """Alembic: create ``idempotency_keys`` in a service's own migration."""
    import sqlalchemy as sa
    from sqlalchemy.dialects import postgresql

    op.create_table(
        "idempotency_keys",
        sa.Column("user_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("response", postgresql.JSONB(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("leased_until", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "key", name="pk_idempotency_keys"),
    )
    op.create_index("ix_idempotency_keys_created_at", "idempotency_keys", ["created_at"])


def store_answers_as_text(op: Any) -> None:
    """Alembic: keep each answer as the JSON text that was sent (it was JSONB: parsed on the way
    in, and replayed with its keys reordered)."""
    op.execute("ALTER TABLE idempotency_keys ALTER COLUMN response TYPE text USING response::text")


def store_answers_as_jsonb(op: Any) -> None:
    """Alembic: undo ``store_answers_as_text``."""
    op.execute("ALTER TABLE idempotency_keys ALTER COLUMN response TYPE jsonb USING response::jsonb")


def drop_idempotency_table(op: Any) -> None:
    """Alembic: drop what ``create_idempotency_table`` created."""
    op.drop_index("ix_idempotency_keys_created_at", table_name="idempotency_keys")
    op.drop_table("idempotency_keys")


_KEYS = IdempotencyKey.__table__
_c = _KEYS.c
_CLAIM_VALUES = {
    "user_id": bindparam("p_user_id"),
    "key": bindparam("p_key"),
    "fingerprint": bindparam("p_fingerprint"),
    "created_at": func.now(),
    "leased_until": func.now() + bindparam("p_lease", type_=Interval()),
}
# The claim's own commit need not wait for its WAL flush (see the module's docstring):
# ``set_config(..., true)`` is ``SET LOCAL``, for the statement's own transaction only.
_ASYNC_COMMIT = select(func.set_config("synchronous_commit", "off", True).label("setting")).cte(
    "async_commit"
)
_claim_insert = insert(_KEYS).from_select(
    list(_CLAIM_VALUES), select(*_CLAIM_VALUES.values()).select_from(_ASYNC_COMMIT)
)
# Claim a new key, or take over one that expired, or one whose request died (same body).
_CLAIM = _claim_insert.on_conflict_do_update(
    index_elements=[_c.user_id, _c.key],
    set_={
        "fingerprint": _claim_insert.excluded.fingerprint,
        "status_code": None,
        "response": None,
        "created_at": _claim_insert.excluded.created_at,
        "leased_until": _claim_insert.excluded.leased_until,
    },
    where=(_c.created_at < func.now() - bindparam("p_retention", type_=Interval()))
    | (
        _c.status_code.is_(None)
        & (_c.leased_until < func.now())
        & (_c.fingerprint == _claim_insert.excluded.fingerprint)
    ),
).returning(_c.created_at)
_FIND = select(_c.fingerprint, _c.status_code, _c.response).where(
    _c.user_id == bindparam("p_user_id"), _c.key == bindparam("p_key")
)
_RECORD = (
    update(_KEYS)
    .where(
        _c.user_id == bindparam("p_user_id"),
        _c.key == bindparam("p_key"),
        _c.created_at == bindparam("p_claimed_at"),
        _c.status_code.is_(None),
    )
    .values(status_code=bindparam("p_status"), response=bindparam("p_response", type_=Text))
)
_GIVE_UP = delete(_KEYS).where(
    _c.user_id == bindparam("p_user_id"),
    _c.key == bindparam("p_key"),
    _c.created_at == bindparam("p_claimed_at"),
    _c.status_code.is_(None),
)


class ClaimLost(ProblemException):
    """The request outlived its claim's lease, and a retry with the key took the claim over: the
    effect must not commit (the retry's runs instead)."""

    def __init__(self) -> None:
        super().__init__(
            409,
            "A request with this Idempotency-Key is still being processed; retry shortly.",
            code="idempotency_key_in_flight",
            headers={"Retry-After": "1"},
        )


@dataclass(slots=True)
class Recorder:
    """Stores the answer of a claimed key in the caller's transaction (``record``).

    ``NO_KEY`` (a request without the header) records nothing.
    """

    user_id: int | None
    key: str | None
    fingerprint: str
    status_code: int
    # The route's answer as JSON text (e.g. ``Model.model_dump_json()``).
    serialize: Callable[[Any], str]
    # The answer's JSON text once recorded (None before): the route sends it as it is.
    body: str | None = None
    # When the claim was made: it tells this request's claim from a later one of the same key.
    claimed_at: datetime | None = None

    def record(self, connection: Any, result: Any) -> None:
        """Store ``result`` (serialised as the route's answer) with the effect's transaction.

        ``connection`` is the use case's ``Connection`` or ``Session``; call it last in the
        transaction, once ``result`` is what the route returns."""
        if self.key is None:
            return
        body = self.serialize(result)
        if connection.execute(_RECORD, self._answer(self.status_code, body)).rowcount != 1:
            raise ClaimLost()
        self.body = body

    def _ids(self) -> dict[str, Any]:
        return {"p_user_id": self.user_id, "p_key": self.key, "p_claimed_at": self.claimed_at}

    def _answer(self, status: int, body: Any) -> dict[str, Any]:
        return {**self._ids(), "p_status": status, "p_response": body}


def no_key(status_code: int = 200) -> Recorder:
    """A recorder that records nothing (no ``Idempotency-Key`` was sent, or a caller outside HTTP)."""
    return Recorder(None, None, "", status_code, str)


NO_KEY = no_key()


def fingerprint(method: str, path: str, body: bytes) -> str:
    """sha256 of the request: method, path (trailing slash or not) and the JSON body (canonical)."""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    except ValueError:
        canonical = body
    digest = hashlib.sha256()
    for part in (method.upper().encode(), path.rstrip("/").encode(), canonical):
        digest.update(part)
        digest.update(b"\n")
    return digest.hexdigest()


async def run_idempotently(
    request: Request,
    key: str | None,
    user_id: int,
    db: Database,
    use_case: Callable[[Recorder], T],
    *,
    serialize: Callable[[T], str],
    status_code: int,
    media_type: str = "application/json",
    headers: Callable[[str], Mapping[str, str]] | None = None,
) -> T | Response:
    """Run ``use_case(recorder)`` in a database thread, at most once per (user, key).

    Without a key it simply runs. With one: a replay answers the stored response; a new key
    is claimed first, the use case records its answer in its own transaction, and a 4xx it
    raises is stored too (nothing changed), while a 5xx or a crash gives the claim up. With a
    key the answer is a ``Response`` of the recorded JSON text (serialised once, as replays get it)
    as ``media_type``, with ``headers(text)`` (e.g. a ``Location`` read from it) on the first
    answer and on its replays.
    """
    if key is None:
        return await db.run(use_case, no_key(status_code))
    request_print = fingerprint(request.method, request.scope["path"], await request.body())
    recorder = Recorder(user_id, key, request_print, status_code, serialize)
    answer = _Answer(media_type, headers)
    replay = await _claim(request.app.state.reads, recorder, answer)
    if replay is not None:
        return replay
    try:
        result = await db.run(use_case, recorder)
    except ClaimLost:
        raise  # the key's claim is a retry's now: neither answered nor given up by this request
    except (DomainError, ProblemException) as exc:
        answer = _problem_of(request, exc)
        if answer is None or answer.status_code >= 500:
            await db.run(_execute, db, _GIVE_UP, recorder._ids())
        else:
            stored = recorder._answer(answer.status_code, bytes(answer.body).decode())
            await db.run(_execute, db, _RECORD, stored)
        raise
    except BaseException:
        await db.run(_execute, db, _GIVE_UP, recorder._ids())
        raise
    if recorder.body is None:
        # A use case that records nothing itself: store its answer now (after its commit).
        recorder.body = serialize(result)
        await db.run(_execute, db, _RECORD, recorder._answer(status_code, recorder.body))
    return answer.response(recorder.body, status_code)


@dataclass(frozen=True, slots=True)
class _Answer:
    """How a recorded answer is sent: its media type and the headers read from its text."""

    media_type: str
    headers: Callable[[str], Mapping[str, str]] | None

    def response(self, body: str, status: int, *, replayed: bool = False) -> Response:
        if status >= 400:  # a refusal, stored as problem+json
            return Response(body, status_code=status, headers=_replayed(replayed), media_type=PROBLEM_JSON)
        headers = {**(self.headers(body) if self.headers else {}), **_replayed(replayed)}
        return Response(body, status_code=status, headers=headers, media_type=self.media_type)


def _replayed(replayed: bool) -> dict[str, str]:
    return {REPLAYED_HEADER: "true"} if replayed else {}


async def _claim(reads: Any, recorder: Recorder, answer: _Answer) -> Response | None:
    values = {
        "p_user_id": recorder.user_id,
        "p_key": recorder.key,
        "p_fingerprint": recorder.fingerprint,
        "p_lease": LEASE,
        "p_retention": RETENTION,
    }
    for _ in range(3):
        if (claimed := await reads.write(_CLAIM, values)) is not None:
            recorder.claimed_at = claimed["created_at"]
            return None
        found = await reads.first(_FIND, {"p_user_id": recorder.user_id, "p_key": recorder.key})
        if found is None:
            continue  # deleted by retention in between: claim again
        if found["fingerprint"] != recorder.fingerprint:
            return problem(
                422,
                "This Idempotency-Key was used for another request; send a new key with a new request.",
                code="idempotency_key_reused",
                errors=[{"field": KEY_HEADER, "message": "already used with a different request body"}],
            )
        if found["status_code"] is None:
            return _in_flight()
        return answer.response(found["response"], found["status_code"], replayed=True)
    return _in_flight()


def _in_flight() -> Response:
    return problem(
        409,
        "A request with this Idempotency-Key is still being processed; retry shortly.",
        code="idempotency_key_in_flight",
        headers={"Retry-After": "1"},
    )


def _problem_of(request: Request, exc: Exception) -> JSONResponse | None:
    if isinstance(exc, ProblemException):
        return problem(exc.status, exc.detail, code=exc.code)
    status_for = getattr(request.app.state, "domain_status", None)
    if status_for is None or not isinstance(exc, DomainError):
        return None
    return problem(status_for(exc), exc.detail, code=exc.code, **exc.extra)


def _execute(db: Database, statement: Any, values: dict[str, Any]) -> None:
    with db.engine.begin() as connection:
        connection.execute(statement, values)


def purge_idempotency_keys(db: Database, older_than: timedelta = RETENTION) -> int:
    """Delete keys claimed more than ``older_than`` ago (a retention task); how many went."""
    with db.engine.begin() as connection:
        return (
            connection.execute(
                delete(_KEYS).where(_c.created_at < func.now() - bindparam("p_age", type_=Interval())),
                {"p_age": older_than},
            ).rowcount
            or 0
        )


def idempotency_retention_tasks(db: Database) -> dict[str, Callable[[], int]]:
    """The retention task of a service that takes Idempotency-Key: keys older than 24 hours go."""
    return {"idempotency keys": lambda: purge_idempotency_keys(db)}
