"""``python -m bench.consumer``: how fast a consumer works off a backlog, batched or one by one.

A backlog is what a consumer meets after its service or the database was down, and what it
builds when events come faster than it applies them one at a time (scheduling's queue grew to
140 messages during `make bench` row 6 before batching). This publishes ``--events`` events to
a stopped consumer's queue, starts it and times until every event's effect is committed: with
``chassis.messaging.EventConsumer``'s default (messages that arrived together share one
transaction and one ack) and with ``batch=False`` (a transaction and an ack per message),
alternately, ``--rounds`` times each. The handler writes one row, as a read model's update does.

It needs PostgreSQL and RabbitMQ as ``make test`` does (``TEST_DATABASE_URL``/``TEST_AMQP_URL``
or the local servers, ``rabbitmqctl`` for a vhost of its own); its database and vhost are
dropped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from contextlib import suppress
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pika
import psycopg
from psycopg import sql
from sqlalchemy import Column, Integer, MetaData, String, Table, Uuid, func, select

from bench.target import _rabbitmqctl, create_vhost, libpq_url
from chassis.db import Base, Database
from chassis.messaging import Envelope, EventConsumer
from chassis.messaging.topology import EXCHANGE, declare_exchanges

EVENT_TYPE = "bench.thing.happened"
_metadata = MetaData()
_effects = Table(
    "effects",
    _metadata,
    Column("id", Integer, primary_key=True),
    Column("event_id", Uuid, nullable=False),
    Column("note", String(100)),
)


def _apply(session: Any, envelope: Envelope) -> None:
    session.execute(_effects.insert().values(event_id=envelope.event_id, note=envelope.data["note"]))


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _count(db: Database) -> int:
    with db.reading() as connection:
        return connection.execute(select(func.count()).select_from(_effects)).scalar_one()


def drain(db: Database, amqp_url: str, channel: Any, events: int, *, batch: bool) -> tuple[float, float]:
    """(events a second, µs of this process's CPU an event) to work off ``events`` queued events."""
    consumer = EventConsumer(f"bench{uuid.uuid4().hex[:8]}", db, amqp_url, {EVENT_TYPE: _apply}, batch=batch)
    consumer.start()  # declares and binds its queue ...
    if not consumer.wait_ready(30):
        raise RuntimeError("the consumer did not subscribe within 30 s")
    consumer.stop()  # ... which keeps what is published meanwhile
    for n in range(events):
        body = json.dumps(Envelope.new(EVENT_TYPE, {"note": str(n)}, producer="bench").to_json()).encode()
        channel.basic_publish(EXCHANGE, EVENT_TYPE, body)
    target = _count(db) + events
    cpu, wall = time.process_time(), time.perf_counter()
    consumer.start()
    try:
        while _count(db) < target:
            time.sleep(0.02)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        consumer.stop()
    return events / wall, cpu / events * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=3000, help="events in each backlog")
    parser.add_argument("--rounds", type=int, default=3, help="backlogs each way, alternated")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    parser.add_argument(
        "--amqp-url", default=os.environ.get("TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    )
    args = parser.parse_args(argv)
    run = uuid.uuid4().hex[:8]
    name = f"clinic_bench_consumer_{run}"
    server = libpq_url(args.postgres_url)
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    parts = urlsplit(server)
    db = Database(urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, "")))
    vhost = f"clinic_bench_consumer_{run}"
    amqp_url = create_vhost(args.amqp_url, vhost)
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        Base.metadata.create_all(db.engine)
        _metadata.create_all(db.engine)
        channel = connection.channel()
        declare_exchanges(channel)
        results: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
        for _ in range(args.rounds):
            for batch in (False, True):
                rate, cpu = drain(db, amqp_url, channel, args.events, batch=batch)
                results[batch].append((rate, cpu))
                kind = "batched" if batch else "one by one"
                say(f"{kind:>10}: {rate:7,.0f} events/s, {cpu:5,.0f} µs CPU an event")
        say(f"\nA backlog of {args.events:,} events, medians of {args.rounds} rounds each way:\n")
        say("| consumer | events/s | µs of CPU an event |")
        say("|---|---:|---:|")
        for batch, label in (
            (False, "a transaction and an ack per message"),
            (True, "batched (the default)"),
        ):
            rates, cpus = zip(*results[batch], strict=True)
            say(f"| {label} | {statistics.median(rates):,.0f} | {statistics.median(cpus):,.0f} |")
    finally:
        with suppress(Exception):
            connection.close()
        db.dispose()
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        with suppress(Exception):
            _rabbitmqctl("delete_vhost", vhost)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
