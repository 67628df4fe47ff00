"""``<service> provision``: least-privileged database roles and broker users, on real servers."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing, suppress
from urllib.parse import quote, urlsplit, urlunsplit

import pika
import pika.exceptions
import psycopg
import pytest
from psycopg import errors, sql

from chassis.messaging import DeadLetters, Envelope, EventConsumer
from chassis.messaging.connection import connect
from chassis.messaging.topology import TopologyMissing, declare_topology_at, ensure_consumer_topology
from chassis.provisioning import broker_permissions, provision_broker_user, provision_database


def with_login(url: str, user: str, password: str | None = None) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    login = quote(user, safe="") + (f":{quote(password, safe='')}" if password else "")
    return urlunsplit((parts.scheme, f"{login}@{host}", parts.path, parts.query, parts.fragment))


def libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


# --- RabbitMQ -------------------------------------------------------------------------------


@pytest.fixture
def broker_user(amqp_url: str) -> Iterator[Callable[..., str]]:
    """``broker_user(service, consumes=True)`` → the URL of that service's own user on the test vhost."""
    users: list[str] = []

    def create(service: str, *, consumes: bool) -> str:
        name = f"{service}_{uuid.uuid4().hex[:6]}"
        url = with_login(amqp_url, name, uuid.uuid4().hex)
        assert provision_broker_user(url, service, consumes=consumes, admin_url=amqp_url)
        users.append(name)
        return url

    yield create
    for name in users:
        with suppress(OSError, subprocess.SubprocessError):
            ctl = os.environ.get("RABBITMQCTL", "rabbitmqctl")
            subprocess.run([ctl, "-q", "delete_user", name], capture_output=True, timeout=60)


def test_a_consumer_retries_dead_letters_and_replays_as_its_own_least_privileged_user(
    record_effect, db, broker, amqp_url, service, event_type, count_effects, wait_until, broker_user
):
    declare_topology_at(amqp_url, service, [event_type], (0.2,))  # `<service> migrate`, as the admin
    own = broker_user(service, consumes=True)
    broken = True

    def handler(session, envelope):
        if broken:
            raise ValueError("not yet")
        record_effect(session, envelope)

    consumer = EventConsumer(service, db, own, {event_type: handler}, retry_delays=(0.2,))
    consumer.start()
    try:
        assert consumer.wait_ready(15)
        envelope = Envelope.new(event_type, {"note": "kept"}, producer="test")
        broker.publish(event_type, envelope)
        dead_letters = DeadLetters(own, service)
        (letter,) = wait_until(lambda: dead_letters.list(), what="the dead letter")
        assert letter["attempts"] == 2  # the first try and one retry, both moved by the service's user
        broken = False
        assert dead_letters.replay() == 1
        wait_until(lambda: count_effects(envelope) == 1, what="the replayed event's effect")
    finally:
        consumer.stop()


def test_a_services_own_user_refuses_to_declare_missing_queues_and_names_migrate(
    amqp_url, service, event_type, broker_user
):
    own = broker_user(service, consumes=True)
    connection = connect(own, name="test")
    try:
        with pytest.raises(TopologyMissing, match=f"run `{service} migrate`"):
            ensure_consumer_topology(connection, service, [event_type], (0.2,))
    finally:
        connection.close()


def test_a_services_own_user_publishes_only_its_own_routing_keys(amqp_url, broker_user):
    declare_topology_at(amqp_url, "booking", None, ())
    own = broker_user("booking", consumes=False)
    with closing(pika.BlockingConnection(pika.URLParameters(own))) as connection:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.basic_publish("clinic.events", "booking.provisioning.probe", b"{}")
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refusal:
            channel.basic_publish("clinic.events", "identity.user.deactivated", b"{}")
    assert refusal.value.reply_code == 403


def test_the_permissions_name_only_the_services_own_resources():
    consumer = broker_permissions("booking", consumes=True)
    assert consumer.configure == "^$"
    assert consumer.write == r"^(clinic\.events|booking\.requeue)$"
    assert consumer.read == r"^(booking\.events|booking\.events\.dlq)$"
    assert consumer.topic_write == r"^booking\."
    producer = broker_permissions("identity", consumes=False)
    assert (producer.write, producer.read) == (r"^(clinic\.events)$", "^$")


def test_the_administrator_is_never_provisioned_as_a_service(amqp_url):
    assert provision_broker_user(amqp_url, "booking", consumes=True, admin_url=amqp_url) is False


# --- PostgreSQL -----------------------------------------------------------------------------


@pytest.fixture
def roles(make_database: Callable[[str], str]) -> Iterator[tuple[str, str, str]]:
    """A database created by the superuser (an install from before the roles), and the URLs of a
    runtime role and an owner role to provision on it: ``(admin_url, runtime_url, owner_url)``."""
    admin_url = make_database(f"prov{uuid.uuid4().hex[:6]}")
    database = urlsplit(admin_url).path.lstrip("/")
    runtime, owner = f"{database}_rt", f"{database}_owner"
    yield admin_url, with_login(admin_url, runtime), with_login(admin_url, owner)
    with psycopg.connect(libpq(admin_url), autocommit=True) as conn:
        names = sql.SQL(", ").join(map(sql.Identifier, (runtime, owner)))
        conn.execute(sql.SQL("REASSIGN OWNED BY {} TO CURRENT_USER").format(names))
        conn.execute(sql.SQL("DROP OWNED BY {}").format(names))
        conn.execute(sql.SQL("DROP ROLE {}").format(names))


def test_provisioning_an_existing_database_hands_its_objects_to_the_owner_and_rows_to_the_runtime_role(
    roles,
):
    admin_url, runtime_url, owner_url = roles
    with psycopg.connect(libpq(admin_url), autocommit=True) as conn:
        conn.execute("CREATE TYPE mood AS ENUM ('calm', 'busy')")
        conn.execute("CREATE TABLE notes (id serial PRIMARY KEY, body text, mood mood)")
        conn.execute("CREATE VIEW note_bodies AS SELECT body FROM notes")
        conn.execute(
            "CREATE FUNCTION note_count() RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM notes'"
        )
    provision_database(admin_url, runtime_url, owner_url)
    provision_database(admin_url, runtime_url, owner_url)  # again: harmless

    owner = urlsplit(owner_url).username
    with psycopg.connect(libpq(admin_url), autocommit=True) as conn:
        owners = conn.execute(
            "SELECT pg_get_userbyid(relowner) FROM pg_class"
            " WHERE relname IN ('notes', 'notes_id_seq', 'note_bodies')"
            " UNION ALL SELECT pg_get_userbyid(proowner) FROM pg_proc WHERE proname = 'note_count'"
            " UNION ALL SELECT pg_get_userbyid(typowner) FROM pg_type WHERE typname = 'mood'"
            " UNION ALL SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()"
        ).fetchall()
    assert {row[0] for row in owners} == {owner} and len(owners) == 6

    with psycopg.connect(libpq(runtime_url), autocommit=True) as conn:
        conn.execute("INSERT INTO notes (body, mood) VALUES ('hello', 'calm')")
        assert conn.execute("SELECT count(*) FROM notes").fetchone() == (1,)
        for statement in (
            "CREATE TABLE spy (x int)",
            "DROP TABLE notes",
            "TRUNCATE notes",
            "CREATE ROLE spy",
        ):
            with pytest.raises(errors.InsufficientPrivilege):
                conn.execute(statement)
    with psycopg.connect(libpq(owner_url), autocommit=True) as conn:
        conn.execute("CREATE TABLE later (id serial PRIMARY KEY)")  # what a migration does
    with psycopg.connect(libpq(runtime_url), autocommit=True) as conn:
        conn.execute("INSERT INTO later DEFAULT VALUES")  # default privileges reach new tables


def test_no_other_role_connects_and_a_new_password_in_the_url_replaces_the_old(roles):
    admin_url, runtime_url, owner_url = roles
    provision_database(admin_url, runtime_url, owner_url)
    runtime = urlsplit(runtime_url).username
    with psycopg.connect(libpq(admin_url), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(f"{runtime}_x")))
        try:
            with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
                psycopg.connect(libpq(with_login(admin_url, f"{runtime}_x"))).close()
        finally:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(f"{runtime}_x")))

        def password() -> str | None:
            return conn.execute(
                "SELECT rolpassword FROM pg_authid WHERE rolname = %s", (runtime,)
            ).fetchone()[0]

        assert password() is None  # no password in the URL: none (the local server trusts 127.0.0.1)
        provision_database(admin_url, with_login(admin_url, runtime, "first"), owner_url)
        first = password()
        provision_database(admin_url, with_login(admin_url, runtime, "second"), owner_url)
        assert first is not None and password() not in (None, first)


def test_a_superuser_in_a_url_is_left_alone(make_database):
    admin_url = make_database(f"prov{uuid.uuid4().hex[:6]}")
    provision_database(admin_url, admin_url, admin_url)  # one URL for everything, as before
    with psycopg.connect(libpq(admin_url), autocommit=True) as conn:
        assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone() == (
            True,
        )


def test_an_administrator_of_another_server_is_refused_before_anything_is_created():
    with pytest.raises(ValueError, match="ADMIN_DATABASE_URL"):
        provision_database(
            "postgresql://postgres@127.0.0.1:5432/postgres",
            "postgresql://clinic_booking@db.example.com:5432/clinic_booking",
            "postgresql://clinic_booking_owner@db.example.com:5432/clinic_booking",
        )


def test_without_rabbitmqctl_or_the_management_api_provision_says_what_to_set():
    with pytest.raises(RuntimeError, match="RABBITMQ_MANAGEMENT_URL"):
        provision_broker_user(
            "amqp://clinic_booking:pw@127.0.0.1:5672/%2F",
            "booking",
            consumes=True,
            admin_url="amqp://guest:guest@127.0.0.1:5672/%2F",
            rabbitmqctl="no-such-rabbitmqctl",
        )
