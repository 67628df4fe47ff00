"""Engine, sessions and the constraint naming convention shared by every service."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import MetaData, create_engine, event, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from chassis.liveness import needs_ping
from chassis.reads import FastReads
from chassis.settings import normalise_database_url, session_options

# Named constraints make migrations reviewable and let error mapping key on names.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base of every service's tables (and chassis' outbox and inbox)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


T = TypeVar("T")


class Database:
    """One service's engine and session factory."""

    def __init__(
        self, url: str, *, pool_size: int = 10, max_overflow: int = 10, read_pool_size: int = 3
    ) -> None:
        self.url = normalise_database_url(url)
        self.read_pool_size = read_pool_size
        self.engine: Engine = create_engine(
            self.url,
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_recycle=1800,
            connect_args={"options": session_options(url)},  # sessions in UTC (chassis.settings)
            # Statement parameters (emails, phone numbers, password hashes, appointment
            # reasons) never reach an exception's text, and so never a log line.
            hide_parameters=True,
        )
        dialect = self.engine.dialect
        event.listen(
            self.engine,
            "checkout",
            lambda dbapi_connection, record, _: _check(dialect, dbapi_connection, record),
        )
        event.listen(self.engine, "checkin", _note_checkin)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        # Threads for ``run``: no more than the pool has connections, so none waits for one.
        self._threads = ThreadPoolExecutor(max(1, pool_size + max_overflow), thread_name_prefix="db")

    async def run(self, function: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run ``function`` (blocking database work) in one of this database's threads.

        For ``async def`` endpoints on hot paths: a plain executor hop costs a fraction of
        what a sync endpoint costs in FastAPI (an anyio thread-pool hop for the endpoint and
        another for validating its response). The caller's context (the request id) goes along.
        """
        call = functools.partial(contextvars.copy_context().run, function, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._threads, call)

    @classmethod
    def from_settings(cls, settings: Any) -> Database:
        """The database of a service's settings (``database_url``, ``db_pool_size``, ``db_max_overflow``)."""
        return cls(
            settings.database_url,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            read_pool_size=settings.db_read_pool_size,
        )

    def fast_reads(self) -> FastReads:
        """A new async pool for this database's hot reads (``chassis.reads``), for one app."""
        return FastReads(self.url, size=self.read_pool_size, dialect=self.engine.dialect)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose work commits on success and rolls back on any error."""
        with self.sessions.begin() as session:
            yield session

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """A connection in autocommit mode, for reads that are one statement each.

        No BEGIN and no ROLLBACK around them: each statement is its own snapshot, exactly
        as it is inside a READ COMMITTED transaction, for one round trip less on each side.
        """
        with self.engine.connect() as connection:
            yield connection.execution_options(isolation_level="AUTOCOMMIT")

    def session(self) -> Iterator[Session]:
        """FastAPI dependency: a session for one request, always closed afterwards."""
        with self.sessions() as session:
            yield session

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        # The threads stay: a disposed engine is usable again (it reconnects), and so is ``run``.
        self.engine.dispose()


def _check(dialect: Any, dbapi_connection: Any, record: Any) -> None:
    """Make sure a pooled connection is alive before it is handed out, cheaply
    (``chassis.liveness``). A failed ping makes the pool replace the connection
    (``DisconnectionError``)."""
    if needs_ping(record.info.get("used_at"), dbapi_connection.fileno):
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise DisconnectionError(f"the pooled connection is dead: {exc}") from exc


def _note_checkin(_dbapi_connection: Any, record: Any) -> None:
    record.info["used_at"] = time.monotonic()


async def request_session(request: Request) -> AsyncIterator[Session]:
    """FastAPI dependency: a session on the app's database for one request.

    Async, so that opening it (no I/O: the connection is taken on first use, in the
    endpoint's thread) and closing it cost no hop to the thread pool; only a session that
    still holds a connection (an open transaction to roll back) is closed in a thread.
    """
    session = request.app.state.db.sessions()
    try:
        yield session
    finally:
        if session.in_transaction():
            await run_in_threadpool(session.close)
        else:
            session.close()


DbSession = Annotated[Session, Depends(request_session)]


async def app_database(request: Request) -> Database:
    """FastAPI dependency: the app's ``Database`` (``app.state.db``)."""
    return request.app.state.db


AppDatabase = Annotated[Database, Depends(app_database)]


async def app_reads(request: Request) -> FastReads:
    """FastAPI dependency: the app's ``FastReads`` (``app.state.reads``, opened at start-up)."""
    return request.app.state.reads


AppReads = Annotated[FastReads, Depends(app_reads)]
