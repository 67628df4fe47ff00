"""Inspect and replay a service's dead letters (``<service>.events.dlq``).

``python -m chassis.messaging.deadletters --service doctor list`` prints one JSON
object per dead letter; ``... replay [--event-id ID ...]`` sends them back to
``doctor.events`` and prints how many. Services expose the same commands as
``<service> dead-letters ...`` through ``deadletters_cli``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TextIO

import pika
from pika.adapters.blocking_connection import BlockingChannel

from chassis.messaging.connection import close_quietly, connect, own_headers, republished_properties
from chassis.messaging.topology import ServiceQueues, ensure_consumer_topology
from chassis.settings import DEFAULT_AMQP_URL

# Our retry bookkeeping; a replayed message starts again with all its retries.
_RETRY_HEADERS = frozenset({"x-attempt", "x-attempts", "x-error"})


class DeadLetters:
    """The dead-letter queue of ``service`` on the broker at ``amqp_url``."""

    def __init__(self, amqp_url: str, service: str) -> None:
        self.amqp_url = amqp_url
        self.queues = ServiceQueues(service)

    def list(self, limit: int = 100) -> list[dict[str, Any]]:
        """Up to ``limit`` dead letters, oldest first, left in the queue.

        Each is ``{event_id, event_type, error, attempts, original_routing_key, body}``;
        ``body`` is the decoded JSON, or the raw text when it is not JSON.
        """
        letters: list[dict[str, Any]] = []
        with self._channel() as channel:
            for _ in range(limit):
                method, properties, body = channel.basic_get(self.queues.dlq, auto_ack=False)
                if method is None:
                    break
                letters.append(describe(properties, body))
            # Give them all back, in order; closing the channel alone would also do it.
            channel.basic_nack(delivery_tag=0, multiple=True, requeue=True)
        return letters

    def replay(self, event_ids: Iterable[str | uuid.UUID] | None = None) -> int:
        """Send dead letters (all, or those with the given event ids) back to the service's queue.

        Each is published (with confirms) to ``<service>.events`` and only then removed from
        the dead-letter queue; returns how many were replayed.
        """
        wanted = None if event_ids is None else {str(e) for e in event_ids}
        replayed = 0
        with self._channel() as channel:
            channel.confirm_delivery()
            waiting = channel.queue_declare(self.queues.dlq, passive=True).method.message_count
            # Look at each message once: those not wanted stay unacked until the end.
            for _ in range(waiting):
                method, properties, body = channel.basic_get(self.queues.dlq, auto_ack=False)
                if method is None:
                    break
                if wanted is not None and describe(properties, body)["event_id"] not in wanted:
                    continue
                headers = {k: v for k, v in own_headers(properties).items() if k not in _RETRY_HEADERS}
                headers["x-replayed"] = True
                channel.basic_publish(
                    self.queues.requeue_exchange,
                    self.queues.main,
                    body,
                    republished_properties(properties, headers),
                    mandatory=True,
                )
                channel.basic_ack(method.delivery_tag)
                replayed += 1
            channel.basic_nack(delivery_tag=0, multiple=True, requeue=True)
        return replayed

    @contextmanager
    def _channel(self) -> Iterator[BlockingChannel]:
        connection = connect(self.amqp_url, name=f"{self.queues.service}-dead-letters")
        try:
            # The service's own user may read its dead letters and requeue them, nothing more.
            ensure_consumer_topology(connection, self.queues.service, (), ())
            yield connection.channel()
        finally:
            close_quietly(connection)


def describe(properties: pika.BasicProperties, body: bytes) -> dict[str, Any]:
    """What an operator needs to know about one dead letter."""
    headers = properties.headers or {}
    try:
        parsed: Any = json.loads(body)
    except ValueError:
        parsed = body.decode("utf-8", errors="replace")
    envelope = parsed if isinstance(parsed, dict) else {}
    error = headers.get("x-error")
    if error is None and headers.get("x-first-death-reason"):
        # Dead-lettered by the broker itself (delivery limit): the consumer kept dying on it.
        error = f"dead-lettered by the broker: {_text(headers['x-first-death-reason'])}"
    return {
        "event_id": properties.message_id or _str_or_none(envelope.get("event_id")),
        "event_type": properties.type or _str_or_none(envelope.get("event_type")),
        "error": _text(error) if error is not None else None,
        "attempts": headers.get("x-attempts", headers.get("x-delivery-count")),
        "original_routing_key": _text(headers.get("x-original-routing-key")),
        "body": parsed,
    }


def _text(value: Any) -> Any:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def build_parser(
    prog: str, amqp_url: str | None = None, *, service_option: bool = False
) -> argparse.ArgumentParser:
    """The ``list`` / ``replay`` command line; ``--service`` only for the stand-alone module."""
    parser = argparse.ArgumentParser(prog=prog, description="Inspect and replay a service's dead letters.")
    if service_option:
        parser.add_argument("--service", required=True, help="the consuming service, e.g. doctor")
    parser.add_argument(
        "--amqp-url",
        default=amqp_url or os.environ.get("AMQP_URL") or DEFAULT_AMQP_URL,
        help="the broker (default: $AMQP_URL)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    list_command = commands.add_parser(
        "list", help="print the dead letters as JSON lines, leaving them queued"
    )
    list_command.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    replay_command = commands.add_parser("replay", help="send dead letters back to the service's queue")
    replay_command.add_argument(
        "--event-id", action="append", dest="event_ids", metavar="ID", help="only this event (repeatable)"
    )
    return parser


def deadletters_cli(
    service: str,
    argv: Sequence[str] | None = None,
    *,
    amqp_url: str | None = None,
    out: TextIO | None = None,
) -> int:
    """Run ``list`` / ``replay`` for ``service`` from command-line ``argv``; returns the exit status.

    For a service's ``<service> dead-letters ...`` command. ``amqp_url`` (e.g. from
    the service's settings) is the default of ``--amqp-url``, else ``AMQP_URL`` from
    the environment, else the local default.
    """
    args = build_parser(f"{service} dead-letters", amqp_url).parse_args(argv)
    return _run(service, args, out or sys.stdout)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m chassis.messaging.deadletters --service NAME [--amqp-url URL] list|replay ...``."""
    args = build_parser("python -m chassis.messaging.deadletters", service_option=True).parse_args(argv)
    return _run(args.service, args, sys.stdout)


def _run(service: str, args: argparse.Namespace, out: TextIO) -> int:
    dead_letters = DeadLetters(args.amqp_url, service)
    if args.command == "list":
        for letter in dead_letters.list(limit=args.limit):
            out.write(json.dumps(letter, default=str) + "\n")
    else:
        out.write(f"{dead_letters.replay(args.event_ids)}\n")
    return 0
