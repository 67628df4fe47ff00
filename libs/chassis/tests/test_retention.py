"""Retention of the outbox and the inbox, on real PostgreSQL: only what is old enough goes."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, insert, select, text

from chassis.db import Database
from chassis.messaging import (
    OutboxEvent,
    ProcessedEvent,
    RetentionJob,
    messaging_retention_tasks,
    purge_processed_events,
    purge_published_events,
)
from chassis.settings import BrokerSettings

OUTBOX = OutboxEvent.__table__
INBOX = ProcessedEvent.__table__


def add_outbox_row(db: Database, *, created_days_ago: float, published_days_ago: float | None) -> uuid.UUID:
    event_id = uuid.uuid4()
    with db.transaction() as session:
        session.execute(
            insert(OUTBOX).values(
                id=event_id,
                event_type="test.thing.happened",
                payload={},
                created_at=func.now() - timedelta(days=created_days_ago),
                published_at=None
                if published_days_ago is None
                else func.now() - timedelta(days=published_days_ago),
            )
        )
    return event_id


def add_inbox_row(db: Database, *, days_ago: float) -> uuid.UUID:
    event_id = uuid.uuid4()
    with db.transaction() as session:
        session.execute(
            insert(INBOX).values(
                event_id=event_id,
                event_type="test.thing.happened",
                processed_at=func.now() - timedelta(days=days_ago),
            )
        )
    return event_id


def ids(db: Database, column) -> set[uuid.UUID]:  # type: ignore[no-untyped-def]
    with db.sessions() as session:
        return set(session.scalars(select(column)))


def test_published_events_older_than_the_retention_go_and_nothing_unpublished_ever_does(db):
    add_outbox_row(db, created_days_ago=9, published_days_ago=8)
    recent = add_outbox_row(db, created_days_ago=2, published_days_ago=1)
    stuck = add_outbox_row(db, created_days_ago=30, published_days_ago=None)
    assert purge_published_events(db, timedelta(days=7)) == 1
    assert ids(db, OUTBOX.c.id) == {recent, stuck}


def test_inbox_rows_older_than_the_retention_go(db):
    old = [add_inbox_row(db, days_ago=15) for _ in range(5)]
    recent = add_inbox_row(db, days_ago=1)
    assert purge_processed_events(db, timedelta(days=14), batch_size=2) == len(old)
    assert ids(db, INBOX.c.event_id) == {recent}


def test_two_replicas_purging_at_once_delete_each_row_once(db):
    for _ in range(40):
        add_outbox_row(db, created_days_ago=10, published_days_ago=10)
    counts: list[int] = []
    barrier = threading.Barrier(2)

    def purge() -> None:
        barrier.wait()
        counts.append(purge_published_events(db, timedelta(days=7), batch_size=5))

    threads = [threading.Thread(target=purge) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(counts) == 40
    assert ids(db, OUTBOX.c.id) == set()


def test_the_job_runs_every_task_and_a_failing_one_does_not_stop_the_others(db):
    add_outbox_row(db, created_days_ago=10, published_days_ago=10)
    add_inbox_row(db, days_ago=20)

    def broken() -> int:
        with db.reading() as connection:
            connection.execute(text("SELECT * FROM no_such_table"))
        return 0

    tasks = {"broken": broken, **messaging_retention_tasks(db, outbox_days=7, inbox_days=14)}
    deleted = RetentionJob("test", tasks, interval=3600).run_once()
    assert deleted == {"published outbox events": 1, "processed events": 1}


def test_the_inbox_is_kept_at_least_a_day():
    with pytest.raises(ValueError):
        BrokerSettings(inbox_retention_days=0.5)
    assert BrokerSettings().inbox_retention_days >= 1
