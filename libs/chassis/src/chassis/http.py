"""A JSON client for a hot internal call: pooled keep-alive HTTP/1.1 on the standard library.

Every booking calls scheduling's hold. httpx (the project's default client) is the measured
exception here: its request and response models, header normalisation, httpcore's pool and
h11's state machine cost booking several times the CPU of this client for that one call
(``python -m bench.http_client``; the numbers in bench/README.md, "The internal call's
client"). It is the only client on ``http.client``; every other call uses httpx.

``JsonClient`` keeps idle connections for reuse, sends JSON, and tells the two failures apart
that matter to a caller: the request never reached the server (``Unreachable``: nothing happened there),
or it was sent and no answer came (``NoAnswer``: it may have taken effect).

A connection that sat idle may have been closed by the server just as it is reused; such a
request is sent again once on a new connection, so the calls must be idempotent (the hold
and the release are, by reservation id).
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from chassis.tracing import client_span, outgoing_headers


class Unreachable(Exception):
    """The connection could not be made: the request was not sent."""


class NoAnswer(Exception):
    """The request was sent (or may have been) but no complete answer came: timeout, reset."""


@dataclass(frozen=True, slots=True)
class JsonResponse:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class JsonClient:
    """POSTs JSON to one server over reused connections; thread-safe."""

    def __init__(self, base_url: str, *, timeout: float, max_idle: int = 32) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self._connection_class = (
            http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        )
        self._host = parts.hostname
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")
        self._host_header = parts.netloc
        self._timeout = timeout
        self._max_idle = max_idle
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def post(self, path: str, body: Any, *, headers: dict[str, str] | None = None) -> JsonResponse:
        payload = json.dumps(body, separators=(",", ":")).encode()
        request_headers = {
            "Host": self._host_header,
            "Content-Type": "application/json",
            "Accept": "application/json",
            **(headers or {}),
        }
        # A client span (when tracing records), its context sent on as ``traceparent``.
        with client_span(f"POST {self._host_header}", **{"server.address": self._host}):
            return self._post(path, payload, outgoing_headers(request_headers))

    def _post(self, path: str, payload: bytes, request_headers: dict[str, str]) -> JsonResponse:
        connection, reused = self._take()
        try:
            return self._exchange(connection, path, payload, request_headers)
        except _Stale:
            if not reused:
                raise NoAnswer("the connection was closed before the answer") from None
        # The server closed the idle connection as it was reused: once more, on a new one. Had it
        # read the request after all, the call's idempotence makes the second one harmless; and
        # if the server is gone now, the first may still have taken effect: no answer, not
        # unreachable.
        try:
            connection = self._connect()
        except Unreachable as exc:
            raise NoAnswer(f"reconnecting failed: {exc}") from exc
        try:
            return self._exchange(connection, path, payload, request_headers)
        except _Stale:
            raise NoAnswer("the connection was closed before the answer") from None

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    def _take(self) -> tuple[http.client.HTTPConnection, bool]:
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        return self._connect(), False

    def _connect(self) -> http.client.HTTPConnection:
        connection = self._connection_class(self._host, self._port, timeout=self._timeout)
        try:
            connection.connect()
        except OSError as exc:  # refused, unreachable, DNS, connect timeout
            connection.close()
            raise Unreachable(str(exc) or type(exc).__name__) from exc
        connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return connection

    def _exchange(
        self, connection: http.client.HTTPConnection, path: str, payload: bytes, headers: dict[str, str]
    ) -> JsonResponse:
        try:
            connection.request("POST", self._prefix + path, body=payload, headers=headers)
            response = connection.getresponse()
            body = response.read()
        except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected) as exc:
            connection.close()
            raise _Stale() from exc
        except (OSError, http.client.HTTPException) as exc:  # timeout, garbled answer
            connection.close()
            raise NoAnswer(str(exc) or type(exc).__name__) from exc
        if response.will_close:
            connection.close()
        else:
            self._give_back(connection)
        return JsonResponse(response.status, body)

    def _give_back(self, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            if len(self._idle) < self._max_idle:
                self._idle.append(connection)
                return
        connection.close()


class _Stale(Exception):
    """The connection broke before any answer: sent again once if it was a reused one."""
