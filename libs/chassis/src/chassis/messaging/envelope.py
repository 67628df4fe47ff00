"""The event envelope: what every message on ``clinic.events`` carries.

``{event_id, event_type, version, occurred_at, producer, correlation_id, data}`` and, when the
event was caused inside a trace, ``traceparent`` (W3C trace context: chassis.tracing); its JSON
Schema is ``contracts/envelope.schema.json``.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from enum import Enum
from typing import Any

# A W3C traceparent header value: version-trace id-parent span id-flags, lowercase hex.
TRACEPARENT_PATTERN = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")

# Also a valid AMQP topic routing key: dot-separated words, no wildcards.
EVENT_TYPE_PATTERN = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
MAX_EVENT_TYPE_LENGTH = 255  # an AMQP short string

_FIELDS = ("event_id", "event_type", "version", "occurred_at", "producer", "correlation_id", "data")


def check_event_type(event_type: str) -> str:
    """``event_type`` if it is a valid ``<context>.<entity>.<past_participle>`` name; else ValueError."""
    if (
        not isinstance(event_type, str)
        or len(event_type) > MAX_EVENT_TYPE_LENGTH
        or not EVENT_TYPE_PATTERN.match(event_type)
    ):
        raise ValueError(f"invalid event type {event_type!r}: expected lowercase dot-separated words")
    return event_type


def _encode(value: Any) -> Any:
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def json_ready(data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` as plain JSON values (UUIDs, datetimes, decimals and enums become strings/values).

    The envelope keeps exactly what goes on the wire, so a producer's test validates
    the very payload that consumers will receive.
    """
    return json.loads(json.dumps(dict(data), default=_encode))


def format_timestamp(value: datetime) -> str:
    """An aware datetime as RFC 3339 in UTC with a ``Z`` suffix."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Envelope:
    """One event: its identity, type, schema version, time, producer, correlation id and payload."""

    event_id: uuid.UUID
    event_type: str
    version: int
    occurred_at: datetime
    producer: str
    correlation_id: str | None
    data: dict[str, Any]
    traceparent: str | None = None

    @classmethod
    def new(
        cls,
        event_type: str,
        data: Mapping[str, Any],
        *,
        producer: str,
        correlation_id: str | None = None,
        version: int = 1,
        traceparent: str | None = None,
    ) -> Envelope:
        """A fresh envelope (new id, occurred now) after checking its fields."""
        check_event_type(event_type)
        if not isinstance(producer, str) or not producer:
            raise ValueError("producer must be a non-empty string")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise ValueError("version must be a positive integer")
        if not isinstance(data, Mapping):
            raise ValueError("data must be a mapping")
        return cls(
            event_id=uuid.uuid4(),
            event_type=event_type,
            version=version,
            occurred_at=datetime.now(UTC),
            producer=producer,
            correlation_id=correlation_id,
            data=json_ready(data),
            traceparent=traceparent if traceparent and TRACEPARENT_PATTERN.match(traceparent) else None,
        )

    def to_json(self) -> dict[str, Any]:
        """The envelope as a JSON object (what the message body and the outbox row hold)."""
        body = {
            "event_id": str(self.event_id),
            "event_type": self.event_type,
            "version": self.version,
            "occurred_at": format_timestamp(self.occurred_at),
            "producer": self.producer,
            "correlation_id": self.correlation_id,
            "data": self.data,
        }
        if self.traceparent is not None:
            body["traceparent"] = self.traceparent
        return body

    @classmethod
    def from_json(cls, value: Any) -> Envelope:
        """Parse a decoded JSON body; raises ValueError when it is not a well-formed envelope.

        Unknown extra keys are ignored so that a newer producer does not break an older consumer.
        """
        if not isinstance(value, dict):
            raise ValueError("an envelope must be a JSON object")
        missing = [f for f in _FIELDS if f not in value and f != "correlation_id"]
        if missing:
            raise ValueError(f"envelope lacks {', '.join(missing)}")
        try:
            event_id = uuid.UUID(value["event_id"])
        except (TypeError, ValueError, AttributeError) as exc:
            raise ValueError("event_id is not a UUID") from exc
        check_event_type(value["event_type"])
        version = value["version"]
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise ValueError("version must be a positive integer")
        occurred_at = value["occurred_at"]
        try:
            occurred = datetime.fromisoformat(occurred_at)
        except (TypeError, ValueError) as exc:
            raise ValueError("occurred_at is not an ISO 8601 datetime") from exc
        if occurred.tzinfo is None:
            raise ValueError("occurred_at has no UTC offset")
        try:
            occurred = occurred.astimezone(UTC)
        except OverflowError as exc:  # 0001-01-01T00:00:00+05:00 is valid ISO 8601, not a UTC time
            raise ValueError("occurred_at is out of range") from exc
        producer = value["producer"]
        if not isinstance(producer, str) or not producer:
            raise ValueError("producer must be a non-empty string")
        correlation_id = value.get("correlation_id")
        if correlation_id is not None and not isinstance(correlation_id, str):
            raise ValueError("correlation_id must be a string or null")
        if not isinstance(value["data"], dict):
            raise ValueError("data must be a JSON object")
        # Only a trace link: a malformed one is dropped, never a reason to refuse the event.
        traceparent = value.get("traceparent")
        if not isinstance(traceparent, str) or not TRACEPARENT_PATTERN.match(traceparent):
            traceparent = None
        return cls(
            event_id=event_id,
            event_type=value["event_type"],
            version=version,
            occurred_at=occurred,
            producer=producer,
            correlation_id=correlation_id,
            data=value["data"],
            traceparent=traceparent,
        )
