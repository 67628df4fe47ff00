"""The transactional outbox and the consumer inbox tables, and ``add_event``.

A producer writes its event in the same transaction as the change it describes;
the relay publishes it after commit. A consumer records each event id it has
handled in the same transaction as the handler's effect, so a redelivery is a no-op.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, DateTime, Index, Integer, String, Text, bindparam, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, Session, mapped_column

from chassis.db import Base
from chassis.messaging.envelope import Envelope
from chassis.observability import request_id_var
from chassis.tracing import current_traceparent

# The relay LISTENs on this channel; add_event NOTIFYs it, which PostgreSQL delivers only on commit.
NOTIFY_CHANNEL = "clinic_outbox"


class OutboxEvent(Base):
    """An event waiting to be published (``published_at`` null) or already published."""

    __tablename__ = "outbox_events"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)  # the event id and AMQP message_id
    event_type: Mapped[str] = mapped_column(String(255))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)  # the whole envelope
    # clock_timestamp(), not now(): events of one transaction keep the order they were added in.
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("clock_timestamp()")
    )
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    last_error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        # The relay only ever scans unpublished rows; keep that index small.
        Index("ix_outbox_events_unpublished", "created_at", postgresql_where=text("published_at IS NULL")),
    )


class ProcessedEvent(Base):
    """The inbox: one row per event this service has handled."""

    __tablename__ = "processed_events"

    event_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    event_type: Mapped[str] = mapped_column(String(255))
    processed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


# For a Core connection: the row and the relay's wake-up in one statement (one round trip).
_INSERT_AND_NOTIFY = text(
    "WITH added AS (INSERT INTO outbox_events (id, event_type, payload) "
    "VALUES (:id, :event_type, :payload) RETURNING 1) "
    f"SELECT pg_notify('{NOTIFY_CHANNEL}', '') FROM added"
).bindparams(bindparam("payload", type_=JSONB))
_NOTIFY = text("SELECT pg_notify(:channel, '')")


def add_event(
    session: Session | Connection,
    event_type: str,
    data: Mapping[str, Any],
    *,
    producer: str,
    correlation_id: str | None = None,
    version: int = 1,
) -> Envelope:
    """Add an event to the outbox, inside ``session``'s transaction; returns its envelope.

    Nothing is published unless the transaction commits, and this never talks to
    the broker, so a broker outage cannot fail the caller. ``correlation_id``
    defaults to the current request id; the current trace context, if any, goes along as
    the envelope's ``traceparent`` (chassis.tracing). ``data`` is stored as plain JSON
    (UUIDs, datetimes and decimals become strings).

    With a ``Session`` the row joins its unit of work (many events of one transaction
    are inserted together at flush); with a Core ``Connection`` (the hot paths that skip
    the ORM) it is inserted at once, together with the relay's wake-up.
    """
    if correlation_id is None:
        correlation_id = request_id_var.get()
    envelope = Envelope.new(
        event_type,
        data,
        producer=producer,
        correlation_id=correlation_id,
        version=version,
        traceparent=current_traceparent(),
    )
    if isinstance(session, Connection):
        values = {"id": envelope.event_id, "event_type": event_type, "payload": envelope.to_json()}
        session.execute(_INSERT_AND_NOTIFY, values)
        return envelope
    session.add(OutboxEvent(id=envelope.event_id, event_type=event_type, payload=envelope.to_json()))
    # No flush here: the caller's own pending changes keep failing where the caller expects (at commit).
    session.execute(_NOTIFY, {"channel": NOTIFY_CHANNEL})
    return envelope
