"""The broker of a test run: its own vhost (``amqp_url``) and the test's view of it (``broker``).

``broker`` publishes other services' events as their relays would, each checked first against
``contracts/`` (a consumer's test is fed only what the producer's contract allows), and
collects what the service under test publishes on the routing keys it ``watch``es, each
checked against its contract as it arrives (so every producer's test checks its contract).
``publish`` and ``bind_queue``/``get`` are the raw ways, for messages no contract describes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, suppress
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import pika
import pytest

from chassis.messaging import EXCHANGE, Envelope, declare_exchanges
from chassis.messaging.contracts import find_contracts_dir, validate_envelope
from chassis.testkit.environment import docker_available, unavailable


class RabbitVhosts:
    """Creates and deletes vhosts with ``rabbitmqctl`` on the machine's RabbitMQ node."""

    def __init__(self, server_url: str) -> None:
        self.server_url = server_url
        self.ctl = os.environ.get("RABBITMQCTL", "rabbitmqctl")
        self.created: list[str] = []

    def _ctl(self, *args: str, stdin: str | None = None) -> None:
        if shutil.which(self.ctl) is None:
            raise RuntimeError(f"{self.ctl} not found; set RABBITMQCTL to create test vhosts")
        subprocess.run(
            [self.ctl, "-q", *args], input=stdin, check=True, capture_output=True, text=True, timeout=60
        )

    def __call__(self, vhost: str) -> str:
        parts = urlsplit(self.server_url)
        user = parts.username or "guest"
        url = urlunsplit((parts.scheme, parts.netloc, "/" + quote(vhost, safe=""), parts.query, ""))
        if _reachable(url):
            # Left over from an earlier run with the same id: start empty. (A vhost that is not
            # there refuses the connection at once; rabbitmqctl would cost an Erlang VM to say so.)
            self._ctl("delete_vhost", vhost)
        # The vhost and the user's permissions in one call: each call starts an Erlang VM.
        full = {"configure": ".*", "write": ".*", "read": ".*"}
        definitions = {"vhosts": [{"name": vhost}], "permissions": [{"user": user, "vhost": vhost, **full}]}
        self._ctl("import_definitions", stdin=json.dumps(definitions))
        self.created.append(vhost)
        return url

    def delete_all(self) -> None:
        """Delete every vhost this made, all at once (one ``rabbitmqctl`` each)."""

        def delete(vhost: str) -> None:
            with suppress(Exception):
                self._ctl("delete_vhost", vhost)

        if self.created:
            with ThreadPoolExecutor(len(self.created)) as pool:
                list(pool.map(delete, self.created))


def _reachable(url: str) -> bool:
    """Whether the broker lets ``url``'s user into its vhost."""
    try:
        pika.BlockingConnection(pika.URLParameters(url)).close()
    except pika.exceptions.AMQPError:
        return False
    return True


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
        if not docker_available():
            unavailable("amqp server")
        from testcontainers.community.rabbitmq import RabbitMqContainer

        rabbit = stack.enter_context(RabbitMqContainer("rabbitmq:3.13-alpine"))
        params = rabbit.get_connection_params()
        yield f"amqp://{rabbit.username}:{rabbit.password}@{params.host}:{params.port}/%2F"


@dataclass(frozen=True)
class Message:
    properties: pika.BasicProperties
    body: bytes
    routing_key: str


class Broker:
    """The test's own view of the broker: publish as other services do, watch what is published."""

    def __init__(self, url: str, contracts_dir: str | Path | None = None) -> None:
        self.url = url
        self._contracts_dir = Path(contracts_dir) if contracts_dir else None
        self.connection = pika.BlockingConnection(pika.URLParameters(url))
        self.channel = self.connection.channel()
        declare_exchanges(self.channel)
        self._watch_queue: str | None = None
        self.seen: list[dict[str, Any]] = []

    @property
    def contracts_dir(self) -> Path:
        """The repository's ``contracts/`` (found upwards from the working directory)."""
        if self._contracts_dir is None:
            self._contracts_dir = find_contracts_dir()
        return self._contracts_dir

    # --- as another service's relay -------------------------------------------------------

    def publish_event(
        self,
        event_type: str,
        data: dict[str, Any] | None = None,
        *,
        producer: str | None = None,
        event_id: uuid.UUID | None = None,
        envelope: Envelope | None = None,
    ) -> Envelope:
        """Publish an event of ``event_type`` (or ``envelope`` again, as a redelivery would) after
        checking it against its contract; returns its envelope."""
        if envelope is None:
            envelope = Envelope.new(event_type, data or {}, producer=producer or event_type.split(".")[0])
            if event_id is not None:
                envelope = replace(envelope, event_id=event_id)
        validate_envelope(envelope.to_json(), self.contracts_dir)
        self.publish(event_type, envelope)
        return envelope

    def publish(
        self,
        routing_key: str,
        body: Envelope | bytes,
        *,
        message_id: str | None = None,
        exchange: str = EXCHANGE,
    ) -> None:
        """Publish ``body`` as it is, checked against nothing (messages no contract describes)."""
        event_type = None
        if isinstance(body, Envelope):
            message_id = message_id or str(body.event_id)
            event_type = body.event_type
            body = json.dumps(body.to_json()).encode()
        self.channel.basic_publish(
            exchange,
            routing_key,
            body,
            pika.BasicProperties(
                message_id=message_id,
                type=event_type,
                content_type="application/json",
                delivery_mode=pika.DeliveryMode.Persistent,
            ),
        )

    # --- what the service under test publishes ----------------------------------------------

    def watch(self, *routing_keys: str) -> Broker:
        """Collect from now on what is published with ``routing_keys`` (patterns allowed)."""
        if self._watch_queue is None:
            self._watch_queue = self.channel.queue_declare("", exclusive=True).method.queue
        for routing_key in routing_keys:
            self.channel.queue_bind(self._watch_queue, EXCHANGE, routing_key=routing_key)
        return self

    def published(self, event_type: str | None = None, **data: Any) -> list[dict[str, Any]]:
        """Every watched event so far (of ``event_type``, whose data contains ``data``), oldest
        first; each was checked against its contract when it arrived."""
        assert self._watch_queue is not None, "watch() the routing keys first"
        while True:
            method, _, body = self.channel.basic_get(self._watch_queue, auto_ack=True)
            if method is None:
                break
            envelope = json.loads(body)
            validate_envelope(envelope, self.contracts_dir)
            self.seen.append(envelope)
        return [
            e
            for e in self.seen
            if event_type in (None, e["event_type"]) and all(e["data"].get(k) == v for k, v in data.items())
        ]

    # --- raw queues ----------------------------------------------------------------------

    def bind_queue(self, *routing_keys: str) -> str:
        """A new exclusive queue bound to ``clinic.events`` for ``routing_keys``."""
        name = f"test.{uuid.uuid4().hex}"
        self.channel.queue_declare(name, exclusive=True)
        for routing_key in routing_keys:
            self.channel.queue_bind(name, EXCHANGE, routing_key=routing_key)
        return name

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

    def envelopes(self, queue: str, count: int, timeout: float = 5.0, **data: Any) -> list[dict[str, Any]]:
        """The first ``count`` event envelopes of ``queue`` whose data contains ``data`` (others
        are consumed and skipped), oldest first; fewer if ``timeout`` seconds pass first.

        Returns as soon as ``count`` are found: a test that expects three events waits for
        three, not for the timeout."""
        found: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while len(found) < count and (left := deadline - time.monotonic()) > 0:
            for message in self.get(queue, count=1, timeout=left):
                envelope = json.loads(message.body)
                if all(envelope["data"].get(k) == v for k, v in data.items()):
                    found.append(envelope)
        return found

    def close(self) -> None:
        if self.connection.is_open:
            self.connection.close()


@pytest.fixture
def broker(amqp_url: str) -> Iterator[Broker]:
    """This test's ``Broker`` on the run's vhost, closed after the test."""
    helper = Broker(amqp_url)
    yield helper
    helper.close()
