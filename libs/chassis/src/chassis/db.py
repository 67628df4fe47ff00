"""Engine, sessions and the constraint naming convention shared by every service."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import MetaData, create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from chassis.settings import normalise_database_url

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


class Database:
    """One service's engine and session factory."""

    def __init__(self, url: str, *, pool_size: int = 10, max_overflow: int = 10) -> None:
        self.url = normalise_database_url(url)
        self.engine: Engine = create_engine(
            self.url,
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_pre_ping=True,
            pool_recycle=1800,
        )
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @classmethod
    def from_settings(cls, settings: Any) -> Database:
        """The database of a service's settings (``database_url``, ``db_pool_size``, ``db_max_overflow``)."""
        return cls(
            settings.database_url, pool_size=settings.db_pool_size, max_overflow=settings.db_max_overflow
        )

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose work commits on success and rolls back on any error."""
        with self.sessions.begin() as session:
            yield session

    def session(self) -> Iterator[Session]:
        """FastAPI dependency: a session for one request, always closed afterwards."""
        with self.sessions() as session:
            yield session

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()


def request_session(request: Request) -> Iterator[Session]:
    """FastAPI dependency: a session on the app's database for one request."""
    with request.app.state.db.sessions() as session:
        yield session


DbSession = Annotated[Session, Depends(request_session)]
