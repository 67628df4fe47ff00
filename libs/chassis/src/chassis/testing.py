"""Pytest fixtures that give each test run its own databases and RabbitMQ vhost on real servers.

Servers come from ``TEST_DATABASE_URL`` / ``TEST_AMQP_URL`` when set (a server URL;
its database or vhost part is ignored), else from testcontainers when a Docker
engine answers. With neither, the tests that need them are skipped on a developer's
machine and **fail** under ``CI=true``: a missing server must never pass silently.

Loaded automatically as a pytest plugin wherever ``clinic-chassis`` is installed.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import pika
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from chassis.messaging import EXCHANGE, Envelope, declare_exchanges
from chassis.settings import normalise_database_url


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _unavailable(what: str) -> None:
    message = f"no {what}: set TEST_{what.split()[0].upper()}_URL or run a Docker engine for testcontainers"
    if _in_ci():
        pytest.fail(f"{message} (CI=true: a missing server is a failure, not a skip)", pytrace=False)
    pytest.skip(message)


def _docker_available() -> bool:
    try:
        import docker  # type: ignore[import-untyped]

        docker.from_env().ping()
        return True
    except Exception:
        return False


def current_run_id(config: pytest.Config) -> str:
    """One id per test run (and per xdist worker), used to name its databases and vhost."""
    base = os.environ.get("CLINIC_TEST_RUN_ID") or getattr(config, "_clinic_run_id", None)
    if base is None:
        base = uuid.uuid4().hex[:10]
        config._clinic_run_id = base  # type: ignore[attr-defined]
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    return f"{base}{worker}"


@pytest.fixture(scope="session")
def run_id(request: pytest.FixtureRequest) -> str:
    return current_run_id(request.config)


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """A URL of a PostgreSQL server where the tests may create databases."""
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        yield normalise_database_url(url)
        return
    if not _docker_available():
        _unavailable("database server")
    from testcontainers.community.postgres import PostgresContainer

    with PostgresContainer("postgres:15-alpine", driver="psycopg") as pg:
        yield pg.get_connection_url()


class DatabaseFactory:
    """Creates uniquely named databases on the test server and drops them afterwards."""

    def __init__(self, server_url: str, run_id: str) -> None:
        self.server_url = make_url(server_url)
        self.run_id = run_id
        self.created: list[str] = []
        self._admin = create_engine(
            self.server_url.set(database="postgres"),
            isolation_level="AUTOCOMMIT",
            poolclass=NullPool,
            hide_parameters=True,
        )

    def __call__(self, name: str) -> str:
        database = f"clinic_test_{self.run_id}_{name}".lower()
        with self._admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{database}"'))
        self.created.append(database)
        return self.server_url.set(database=database).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        with self._admin.connect() as conn:
            for database in self.created:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        self._admin.dispose()


@pytest.fixture(scope="session")
def make_database(postgres_server_url: str, run_id: str) -> Iterator[Callable[[str], str]]:
    """``make_database("identity")`` → the URL of a fresh database of this test run."""
    factory = DatabaseFactory(postgres_server_url, run_id)
    yield factory
    if not os.environ.get("CLINIC_KEEP_TEST_DATABASES"):
        factory.drop_all()


class RabbitVhosts:
    """Creates and deletes vhosts with ``rabbitmqctl`` on the machine's RabbitMQ node."""

    def __init__(self, server_url: str) -> None:
        self.server_url = server_url
        self.ctl = os.environ.get("RABBITMQCTL", "rabbitmqctl")
        self.created: list[str] = []

    def _ctl(self, *args: str) -> None:
        if shutil.which(self.ctl) is None:
            raise RuntimeError(f"{self.ctl} not found; set RABBITMQCTL to create test vhosts")
        subprocess.run([self.ctl, "-q", *args], check=True, capture_output=True, timeout=60)

    def __call__(self, vhost: str) -> str:
        parts = urlsplit(self.server_url)
        user = parts.username or "guest"
        with suppress(subprocess.CalledProcessError):
            self._ctl("delete_vhost", vhost)
        self._ctl("add_vhost", vhost)
        self._ctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
        self.created.append(vhost)
        return urlunsplit((parts.scheme, parts.netloc, "/" + quote(vhost, safe=""), parts.query, ""))

    def delete_all(self) -> None:
        for vhost in self.created:
            with suppress(Exception):
                self._ctl("delete_vhost", vhost)


@pytest.fixture(scope="session")
def amqp_url(run_id: str) -> Iterator[str]:
    """An AMQP URL of a vhost that belongs to this test run alone."""
    server = os.environ.get("TEST_AMQP_URL")
    with ExitStack() as stack:
        if server:
            vhosts = RabbitVhosts(server)
            url = vhosts(f"clinic_test_{run_id}")
            if not os.environ.get("CLINIC_KEEP_TEST_DATABASES"):
                stack.callback(vhosts.delete_all)
            yield url
            return
        if not _docker_available():
            _unavailable("amqp server")
        from testcontainers.community.rabbitmq import RabbitMqContainer

        rabbit = stack.enter_context(RabbitMqContainer("rabbitmq:3.13-alpine"))
        params = rabbit.get_connection_params()
        yield f"amqp://{rabbit.username}:{rabbit.password}@{params.host}:{params.port}/%2F"


class TcpProxy:
    """A small threaded TCP proxy from ``127.0.0.1:<port>`` to ``target_host:target_port``.

    ``cut()`` closes every proxied connection and stops listening (new connections
    are refused), as if the server had gone away; ``restore()`` listens again on the
    same port. Point a client at ``proxy.url(server_url)`` to put the proxy in between.
    """

    def __init__(self, target_host: str, target_port: int, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.target = (target_host, target_port)
        self.host = host
        self.port = port or _free_port(host)
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()

    @classmethod
    def for_url(cls, url: str) -> TcpProxy:
        """A proxy (not yet started) to the host and port of a ``postgresql://`` or ``amqp://`` URL."""
        parts = urlsplit(url)
        default_port = 5672 if parts.scheme.startswith("amqp") else 5432
        return cls(parts.hostname or "127.0.0.1", parts.port or default_port)

    def url(self, url: str) -> str:
        """``url`` with its host and port replaced by the proxy's."""
        parts = urlsplit(url)
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@{self.host}:{self.port}" if userinfo else f"{self.host}:{self.port}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))

    def start(self) -> TcpProxy:
        """Start listening; returns the proxy."""
        with self._lock:
            if self._listener is None:
                self._listen()
        return self

    def cut(self) -> None:
        """Drop every connection and refuse new ones until ``restore()``."""
        with self._lock:
            listener, self._listener = self._listener, None
            sockets, self._sockets = self._sockets, set()
        for sock in [listener, *sockets]:
            if sock is not None:
                _close_socket(sock)

    def restore(self) -> None:
        """Accept connections again (on the same port)."""
        self.start()

    def close(self) -> None:
        self.cut()

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), name="tcp-proxy", daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut() closed the listener
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _close_socket(client)
                continue
            with self._lock:
                if self._listener is not listener:  # cut while connecting
                    _close_socket(client)
                    _close_socket(upstream)
                    continue
                self._sockets.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._sockets.difference_update((source, sink))
            _close_socket(source)
            _close_socket(sink)


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _close_socket(sock: socket.socket) -> None:
    # shutdown() first: it wakes a thread blocked in accept()/recv() on this socket at once.
    with suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with suppress(OSError):
        sock.close()


@pytest.fixture
def tcp_proxy() -> Iterator[Callable[[str], TcpProxy]]:
    """``tcp_proxy(server_url)`` → a started ``TcpProxy`` to that server, closed after the test."""
    proxies: list[TcpProxy] = []

    def start(url: str) -> TcpProxy:
        proxy = TcpProxy.for_url(url).start()
        proxies.append(proxy)
        return proxy

    yield start
    for proxy in proxies:
        proxy.close()


# --- polling and a view of the broker, for tests of every service -------------------------


def wait_until(
    predicate: Callable[[], Any], timeout: float = 15.0, interval: float = 0.05, *, what: str = "condition"
) -> Any:
    """Poll ``predicate`` until it returns something truthy, and return that.

    Fails the test after ``timeout`` seconds, naming ``what`` and the last result:
    the way to wait for an effect that an event or another process brings, without
    sleeping blindly.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}; last result: {result!r}")
        time.sleep(interval)


@pytest.fixture(name="wait_until")
def wait_until_fixture() -> Callable[..., Any]:
    return wait_until


@dataclass(frozen=True)
class Message:
    properties: pika.BasicProperties
    body: bytes
    routing_key: str


class Broker:
    """The test's own view of the broker: bind throw-away queues, publish, read."""

    def __init__(self, url: str) -> None:
        self.connection = pika.BlockingConnection(pika.URLParameters(url))
        self.channel = self.connection.channel()
        declare_exchanges(self.channel)

    def bind_queue(self, *routing_keys: str) -> str:
        """A new exclusive queue bound to ``clinic.events`` for ``routing_keys``."""
        name = f"test.{uuid.uuid4().hex}"
        self.channel.queue_declare(name, exclusive=True)
        for routing_key in routing_keys:
            self.channel.queue_bind(name, EXCHANGE, routing_key=routing_key)
        return name

    def publish(
        self,
        routing_key: str,
        body: Envelope | bytes,
        *,
        message_id: str | None = None,
        exchange: str = EXCHANGE,
    ) -> None:
        if isinstance(body, Envelope):
            message_id = message_id or str(body.event_id)
            body = json.dumps(body.to_json()).encode()
        self.channel.basic_publish(
            exchange,
            routing_key,
            body,
            pika.BasicProperties(
                message_id=message_id,
                content_type="application/json",
                delivery_mode=pika.DeliveryMode.Persistent,
            ),
        )

    def get(self, queue: str, count: int = 1, timeout: float = 5.0) -> list[Message]:
        """Up to ``count`` messages of ``queue`` (consumed), waiting at most ``timeout`` seconds."""
        messages: list[Message] = []
        deadline = time.monotonic() + timeout
        while len(messages) < count:
            method, properties, body = self.channel.basic_get(queue, auto_ack=True)
            if method is not None:
                messages.append(Message(properties, body, method.routing_key))
                continue
            if time.monotonic() > deadline:
                break
            self.connection.sleep(0.05)
        return messages

    def close(self) -> None:
        if self.connection.is_open:
            self.connection.close()


@pytest.fixture
def broker(amqp_url: str) -> Iterator[Broker]:
    helper = Broker(amqp_url)
    yield helper
    helper.close()
