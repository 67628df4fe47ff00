"""One webhook attempt: Standard Webhooks headers, signed with the subscription's secret (the
``standardwebhooks`` package), POSTed to the checked address, no redirects, one time limit."""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpcore
import httpx
from standardwebhooks.webhooks import Webhook

from notification.adapters.targets import resolve_target
from notification.domain import RESPONSE_EXCERPT_LENGTH, TargetRefused


@dataclass(frozen=True, slots=True)
class AttemptResult:
    status_code: int | None
    # Why it failed, in words for the delivery record (None: the receiver answered 2xx).
    error: str | None
    response_excerpt: str | None


def body_of(payload: dict[str, Any]) -> str:
    """The exact bytes that are signed and sent (compact JSON, the same on every attempt)."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def signed_headers(secret: str, webhook_id: str, body: str, now: datetime) -> dict[str, str]:
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(webhook_id, now, body),
        "content-type": "application/json",
    }


class WebhookSender:
    """Sends attempts with one shared connection pool (threads may share it)."""

    def __init__(self, *, timeout: float, allow_private: bool, max_connections: int = 16) -> None:
        self.allow_private = allow_private
        # The whole attempt within ``timeout``: connecting, sending, the answer's status and
        # headers (every socket operation ends by the attempt's deadline, so a receiver that sends
        # its headers a byte at a time is cut off too). A receiver that hangs costs one slot for
        # that long, then counts as a failed attempt. Its body is read for an excerpt only until
        # the deadline.
        self.client = httpx.Client(
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
            trust_env=False,
            transport=_transport(max_connections),
            headers={"user-agent": "Clinic-Webhooks/1"},
        )
        self.timeout = timeout

    def close(self) -> None:
        self.client.close()

    def attempt(self, *, url: str, secret: str, webhook_id: str, payload: dict[str, Any]) -> AttemptResult:
        try:
            target = resolve_target(url, allow_private=self.allow_private)
        except TargetRefused as exc:
            return AttemptResult(None, f"refused: {exc}", None)
        body = body_of(payload)
        deadline = time.monotonic() + self.timeout
        headers = {**signed_headers(secret, webhook_id, body, datetime.now(UTC)), "host": target.host_header}
        extensions = {"sni_hostname": target.host} if target.parts.scheme == "https" else {}
        _attempt.deadline = deadline
        try:
            with self.client.stream(
                "POST", target.connect_url, content=body.encode(), headers=headers, extensions=extensions
            ) as response:
                excerpt = _excerpt(response, deadline)
        except httpx.TimeoutException:
            return AttemptResult(None, f"no answer within {self.timeout:g} s", None)
        except httpx.HTTPError as exc:
            return AttemptResult(None, f"could not be reached ({exc.__class__.__name__})", None)
        finally:
            _attempt.deadline = None
        if 200 <= response.status_code < 300:
            return AttemptResult(response.status_code, None, excerpt)
        if response.is_redirect:
            return AttemptResult(response.status_code, "answered with a redirect (not followed)", excerpt)
        return AttemptResult(response.status_code, f"answered {response.status_code}", excerpt)


def _excerpt(response: httpx.Response, deadline: float) -> str | None:
    """The start of the receiver's answer, read no further (a huge body is not downloaded) and
    no later than ``deadline``: the status decided, so a body that trickles, or breaks off, ends
    the excerpt, not the attempt."""
    chunk = b""
    try:
        for data in response.iter_bytes():
            chunk += data
            if len(chunk) >= RESPONSE_EXCERPT_LENGTH or time.monotonic() >= deadline:
                break
    except httpx.HTTPError:
        pass
    text = chunk[:RESPONSE_EXCERPT_LENGTH].decode("utf-8", errors="replace")
    return text[:RESPONSE_EXCERPT_LENGTH] or None


# The deadline of the attempt the current thread is making (None outside one).
_attempt = threading.local()


def _left(timeout: float | None) -> float | None:
    """``timeout`` for one socket operation, cut to what is left of the thread's attempt."""
    deadline = getattr(_attempt, "deadline", None)
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise httpcore.ReadTimeout("the attempt's time limit is spent")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read and write ends by the attempt's deadline."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _left(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _left(timeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname, _left(timeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's own sockets, connected and used within the attempt's deadline."""

    def __init__(self) -> None:
        self._backend = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._backend.connect_tcp(host, port, _left(timeout), local_address, socket_options)
        return _DeadlineStream(stream)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("webhooks go over TCP only")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


def _transport(max_connections: int) -> httpx.HTTPTransport:
    """httpx's transport over a pool of ``_DeadlineBackend`` connections (httpx takes no backend
    of its own choosing, so its pool is replaced by one built the same way)."""
    transport = httpx.HTTPTransport(trust_env=False)
    transport._pool = httpcore.ConnectionPool(
        ssl_context=httpx.create_ssl_context(trust_env=False),
        max_connections=max_connections,
        max_keepalive_connections=max_connections,
        keepalive_expiry=httpx.Limits(max_connections=max_connections).keepalive_expiry,
        network_backend=_DeadlineBackend(),
    )
    return transport
