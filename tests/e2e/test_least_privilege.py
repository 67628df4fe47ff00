"""Least privilege, tried with the credentials the stack's services really run with.

Each service connects to PostgreSQL as its own role and to RabbitMQ as its own user
(``<service> provision`` made them, ``tests/e2e/stack.py``). A compromised service gets
exactly those credentials: these tests use them as an attacker would, against the real
servers, and expect every attempt beyond the service's own job to be refused.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import closing
from urllib.parse import urlsplit, urlunsplit

import pika
import pika.exceptions
import psycopg
import pytest
from psycopg import errors

from chassis.messaging import EXCHANGE

from .stack import SERVICES, Stack

# A routing key each service must never publish: another service's event.
FOREIGN_EVENTS = {
    "identity": "booking.appointment.cancelled",
    "doctor": "identity.user.deactivated",
    "scheduling": "booking.appointment.booked",
    "booking": "identity.user.deactivated",
    "notification": "booking.appointment.booked",
}
# A queue of another service for each consuming service (identity consumes nothing).
FOREIGN_QUEUES = {
    "doctor": "booking.events",
    "scheduling": "doctor.events",
    "booking": "scheduling.events",
    "notification": "booking.events",
}


def libpq(url: str, database: str | None = None) -> str:
    parts = urlsplit(url.replace("postgresql+psycopg://", "postgresql://", 1))
    path = f"/{database}" if database is not None else parts.path
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


@pytest.fixture
def booking_db(stack: Stack) -> Iterator[psycopg.Connection]:
    with psycopg.connect(libpq(stack.runtime_database_urls["booking"]), autocommit=True) as conn:
        yield conn


def broker_refusal(url: str, action) -> pika.exceptions.ChannelClosedByBroker:
    """Run ``action(channel)`` on a new channel with publisher confirms; the broker's refusal."""
    with closing(pika.BlockingConnection(pika.URLParameters(url))) as connection:
        channel = connection.channel()
        channel.confirm_delivery()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refusal:
            action(channel)
        return refusal.value


# --- PostgreSQL -------------------------------------------------------------------------------


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_runs_as_a_role_that_is_neither_superuser_nor_creator(stack: Stack, service: str):
    with psycopg.connect(libpq(stack.runtime_database_urls[service]), autocommit=True) as conn:
        role, superuser, createrole, createdb = conn.execute(
            "SELECT rolname, rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        assert role != "postgres"
        assert (superuser, createrole, createdb) == (False, False, False)
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute(f'CREATE ROLE "intruder_{uuid.uuid4().hex[:8]}" SUPERUSER LOGIN')
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute(f'CREATE DATABASE "intruder_{uuid.uuid4().hex[:8]}"')


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_role_reads_and_writes_rows_but_cannot_change_the_schema(stack: Stack, service: str):
    with psycopg.connect(libpq(stack.runtime_database_urls[service]), autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM outbox_events").fetchone()[0] >= 0
        for ddl in (
            "CREATE TABLE stolen (secret text)",
            "DROP TABLE outbox_events",
            "ALTER TABLE outbox_events ADD COLUMN backdoor text",
            "TRUNCATE outbox_events",
        ):
            with pytest.raises(errors.InsufficientPrivilege):
                conn.execute(ddl)


def test_the_migration_owner_is_not_a_superuser_either(stack: Stack):
    with psycopg.connect(libpq(stack.migration_database_urls["identity"]), autocommit=True) as conn:
        superuser = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
        assert superuser == (False,)
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute(f'CREATE ROLE "intruder_{uuid.uuid4().hex[:8]}"')


@pytest.mark.parametrize("service", ["doctor", "scheduling", "booking"])
def test_another_services_role_cannot_connect_to_identitys_database(stack: Stack, service: str):
    identity_database = database_name(stack.database_urls["identity"])
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        psycopg.connect(libpq(stack.runtime_database_urls[service], identity_database)).close()


def test_bookings_role_sees_its_own_users_read_model_never_identitys_password_hashes(
    stack: Stack, booking_db: psycopg.Connection
):
    # On its own database, booking's role sees only booking's tables (its `users` is its own read
    # model, without password hashes); identity's table is out of reach.
    columns = {
        row[0]
        for row in booking_db.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'users'"
        ).fetchall()
    }
    assert "password_hash" not in columns
    identity = database_name(stack.database_urls["identity"])
    with (
        pytest.raises(psycopg.OperationalError, match="permission denied for database"),
        psycopg.connect(libpq(stack.runtime_database_urls["booking"], identity)) as conn,
    ):
        conn.execute("SELECT email, password_hash FROM users")


# --- RabbitMQ ---------------------------------------------------------------------------------


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_cannot_publish_another_services_events(stack: Stack, service: str):
    event = FOREIGN_EVENTS[service]
    refusal = broker_refusal(
        stack.runtime_amqp_urls[service],
        lambda channel: channel.basic_publish(EXCHANGE, event, b"{}", mandatory=True),
    )
    assert refusal.reply_code == 403
    assert f"topic '{event}'" in refusal.reply_text


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_may_publish_its_own_routing_keys(stack: Stack, service: str):
    # Unbound, so no consumer sees it: the alternate exchange keeps it in clinic.unrouted.
    with closing(pika.BlockingConnection(pika.URLParameters(stack.runtime_amqp_urls[service]))) as connection:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.basic_publish(EXCHANGE, f"{service}.least-privilege.probe", b"{}", mandatory=True)


def test_booking_cannot_slip_an_event_into_another_queue_through_the_default_exchange(stack: Stack):
    refusal = broker_refusal(
        stack.runtime_amqp_urls["booking"],
        lambda channel: channel.basic_publish("", "doctor.events", b"{}", mandatory=True),
    )
    assert refusal.reply_code == 403
    assert "amq.default" in refusal.reply_text


@pytest.mark.parametrize("service", sorted(FOREIGN_QUEUES))
def test_a_service_cannot_read_another_services_queue(stack: Stack, service: str):
    queue = FOREIGN_QUEUES[service]
    for action in (
        lambda channel: channel.basic_get(queue, auto_ack=False),
        lambda channel: channel.basic_consume(queue, lambda *args: None),
    ):
        refusal = broker_refusal(stack.runtime_amqp_urls[service], action)
        assert refusal.reply_code == 403
        assert f"queue '{queue}'" in refusal.reply_text


def test_bookings_user_cannot_bind_its_queue_to_other_events_nor_touch_the_topology(stack: Stack):
    url = stack.runtime_amqp_urls["booking"]
    for action in (
        lambda channel: channel.queue_bind("booking.events", EXCHANGE, routing_key="#"),
        lambda channel: channel.exchange_delete(EXCHANGE),
        lambda channel: channel.queue_delete("booking.events"),
        lambda channel: channel.queue_declare("booking.events.spy", durable=True),
    ):
        assert broker_refusal(url, action).reply_code == 403


def test_a_consumer_reads_its_own_queue(stack: Stack):
    # What the service needs still works with the same user: a passive check and a get.
    doctor = pika.URLParameters(stack.runtime_amqp_urls["doctor"])
    with closing(pika.BlockingConnection(doctor)) as connection:
        channel = connection.channel()
        channel.queue_declare("doctor.events.dlq", passive=True)
        channel.basic_get("doctor.events.dlq", auto_ack=False)  # no refusal; whatever is there goes back
