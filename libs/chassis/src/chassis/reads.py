"""The hot reads, on the event loop: one statement each, no thread hop, no ORM.

Every list a client reads most (a patient's appointments, a doctor's free timeslots, the
doctor search, the caller's own account) is one or two plain statements. Through the
synchronous engine each cost a hop to a worker thread, a pool checkout with its checks and
SQLAlchemy's execution machinery, several times what psycopg's async connection on the event
loop itself needs (``make bench``, rows 2 to 5; bench/README.md, change 9).

``FastReads`` keeps a small psycopg ``AsyncConnectionPool`` in autocommit (each statement its
own snapshot, as inside a READ COMMITTED transaction) and runs prebuilt SQLAlchemy Core
statements on it, each compiled once to SQL by the service's own dialect. It belongs to one
app and one event loop: ``create_service_app`` opens it at start-up and closes it at shutdown.
Writes, and anything that needs a transaction, stay on ``Database``; the one exception is a
change that is whole in one statement (``write``: scheduling's conditional hold).

A pooled connection is checked without a round trip before use, as ``Database`` does: only
when its socket is readable (the server closed it) or it sat idle for a while is it pinged,
and a dead one is replaced. Errors are psycopg's own (``OperationalError`` when the server
cannot be reached, ``PoolTimeout`` when no connection frees up in time); the service app
answers them with the same problem responses as SQLAlchemy's.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from enum import Enum
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement

from chassis.liveness import needs_ping
from chassis.settings import normalise_database_url, session_options

# How long a read waits for a free connection (or for the server) before it is a 503. Reads
# hold a connection for one statement, so waiting longer means the server is out of reach or
# out of connections: better a quick 503 than a request (and the gateway's check) stuck.
WAIT_SECONDS = 2.0


class FastReads:
    """Single-statement reads on a small async pool; ``open()`` inside the app's event loop."""

    def __init__(
        self,
        url: str,
        *,
        size: int,
        dialect: Dialect,
        name: str = "reads",
        wait_seconds: float = WAIT_SECONDS,
    ) -> None:
        conninfo = normalise_database_url(url).replace("postgresql+psycopg://", "postgresql://", 1)
        self.dialect = dialect
        self.pool = AsyncConnectionPool(
            conninfo,
            min_size=size,
            max_size=size,
            open=False,
            name=name,
            timeout=wait_seconds,
            kwargs={
                "autocommit": True,
                "row_factory": dict_row,
                "connect_timeout": 5,
                "options": session_options(url),  # sessions in UTC (chassis.settings)
            },
            check=self._check,
        )
        self._compiled: dict[int, tuple[ClauseElement, str, dict[str, Any]]] = {}
        # When each connection went back to the pool; gone with the connection itself.
        self._used_at: weakref.WeakKeyDictionary[psycopg.AsyncConnection, float] = weakref.WeakKeyDictionary()

    async def open(self) -> None:
        # Without waiting: a service starts (and says it is not ready) while its database is down.
        await self.pool.open(wait=False)

    async def close(self) -> None:
        await self.pool.close()

    async def all(self, statement: ClauseElement, values: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Every row, as dicts keyed by the statement's column names (labels)."""
        async with self.connection() as reader:
            return await reader.all(statement, values)

    async def first(self, statement: ClauseElement, values: Mapping[str, Any]) -> dict[str, Any] | None:
        async with self.connection() as reader:
            return await reader.first(statement, values)

    async def scalar(self, statement: ClauseElement, values: Mapping[str, Any]) -> Any:
        """The first column of the first row (None without rows)."""
        async with self.connection() as reader:
            return await reader.scalar(statement, values)

    async def write(self, statement: ClauseElement, values: Mapping[str, Any]) -> dict[str, Any] | None:
        """One statement that changes rows and commits on its own (autocommit); its first row.

        Only for a change that is whole in one statement and needs no transaction around it:
        a conditional ``UPDATE ... RETURNING`` that decides alone (scheduling's hold). Anything
        that must commit together with something else belongs in ``Database.transaction()``.
        """
        async with self.connection() as reader:
            return await reader.first(statement, values)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Reader]:
        """One pooled connection for several statements (a page and its count): one checkout."""
        connection = await self.pool.getconn()
        try:
            yield Reader(self, connection)
        finally:
            self._used_at[connection] = time.monotonic()
            await self.pool.putconn(connection)

    def _prepare(self, statement: ClauseElement, values: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        compiled = self._compiled.get(id(statement))
        if compiled is None or compiled[0] is not statement:
            # Once per statement object: the hot statements are built once, at import.
            done = statement.compile(dialect=self.dialect)
            compiled = (statement, str(done), dict(done.params))
            self._compiled[id(statement)] = compiled
        _, sql, defaults = compiled
        params = {**defaults, **values}
        for key, value in params.items():
            if isinstance(value, Enum):
                params[key] = value.value
        return sql, params

    async def _check(self, connection: psycopg.AsyncConnection) -> None:
        """Hand out a live connection: ping it only if the server may have closed it."""
        if needs_ping(self._used_at.pop(connection, None), connection.fileno):
            await connection.execute("SELECT 1")


class Reader:
    """Statements on one checked-out connection of a ``FastReads`` (``FastReads.connection()``)."""

    __slots__ = ("_connection", "_reads")

    def __init__(self, reads: FastReads, connection: psycopg.AsyncConnection) -> None:
        self._reads = reads
        self._connection = connection

    async def all(self, statement: ClauseElement, values: Mapping[str, Any]) -> list[dict[str, Any]]:
        cursor = await self._connection.execute(*self._reads._prepare(statement, values))
        return await cursor.fetchall()

    async def first(self, statement: ClauseElement, values: Mapping[str, Any]) -> dict[str, Any] | None:
        cursor = await self._connection.execute(*self._reads._prepare(statement, values))
        return await cursor.fetchone()

    async def scalar(self, statement: ClauseElement, values: Mapping[str, Any]) -> Any:
        row = await self.first(statement, values)
        return None if row is None else next(iter(row.values()))
