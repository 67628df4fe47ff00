"""Stand-in servers for testing the gateway's routing file on its own.

Each answers every request with a JSON description of what it received (method, path,
headers), so a test sees exactly what the real Traefik forwarded; with ``?echo_status=NNN`` in
the path, under that status (and ``/problems/NNN`` and ``/fhir/problems/NNN``, the docs app's problem
pages, under NNN).
The identity stand-in also answers ForwardAuth at ``/internal/verify``: 200 with ``X-User-Id``/``X-User-Role``
for a known bearer token, else a 401 problem; ``verify_status`` makes it answer that status
instead, ``verify_delay`` makes it wait that many seconds first (a sick identity).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .stack import SERVICES


@dataclass
class SeenRequest:
    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> list[str]:
        """Every value of header ``name`` (case-insensitive), as received."""
        return [value for key, value in self.headers if key.lower() == name.lower()]


@dataclass
class EchoServer:
    service: str
    name: str = ""
    users: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    ready_status: int = 200
    verify_status: int | None = None
    verify_delay: float = 0.0
    requests: list[SeenRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.name = self.name or self.service
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the server first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> EchoServer:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name=f"echo-{self.name}", daemon=True).start()
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def record(self, request: SeenRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def seen(self, marker: str) -> list[SeenRequest]:
        """The requests received whose path (or forwarded URI) contains ``marker``."""
        with self._lock:
            return [
                r
                for r in self.requests
                if marker in r.path or any(marker in v for v in r.header("X-Forwarded-Uri"))
            ]


def _handler_for(server: EchoServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def handle_any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            seen = SeenRequest(self.command, self.path, list(self.headers.items()), self.rfile.read(length))
            if self.path == "/health/ready":
                self.reply(
                    server.ready_status, {"status": "ok" if server.ready_status == 200 else "unavailable"}
                )
                return
            server.record(seen)
            if self.path.startswith("/internal/verify"):
                self.verify(seen)
                return
            # ?echo_status=NNN: answer with that status (what the gateway makes of a service's errors);
            # the docs app's problem pages (/problems/NNN, /fhir/problems/NNN) answer with theirs.
            url = urlsplit(seen.path)
            status = parse_qs(url.query).get("echo_status", ["200"])[0]
            if url.path.startswith(("/problems/", "/fhir/problems/")):
                status = url.path.rsplit("/", 1)[-1]
            self.reply(
                int(status),
                {
                    "service": server.service,
                    "server": server.name,
                    "method": seen.method,
                    "path": seen.path,
                    "headers": seen.headers,
                },
            )

        def verify(self, seen: SeenRequest) -> None:
            if server.verify_delay:
                time.sleep(server.verify_delay)
            if server.verify_status is not None:
                self.reply(server.verify_status, {"detail": "stand-in failure"})
                return
            authorization = (seen.header("Authorization") or [""])[0]
            user = server.users.get(authorization.removeprefix("Bearer "))
            if user is None:
                problem = {
                    "type": "about:blank",
                    "title": "Unauthorized",
                    "status": 401,
                    "detail": "stand-in",
                }
                self.reply(
                    401,
                    problem,
                    content_type="application/problem+json",
                    headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
                )
                return
            self.reply(200, None, headers={"X-User-Id": user[0], "X-User-Role": user[1]})

        def reply(
            self,
            status: int,
            body: Any,
            *,
            content_type: str = "application/json",
            headers: Mapping[str, str] | None = None,
        ) -> None:
            payload = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = handle_any

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            return

    return Handler


@contextmanager
def echo_servers(users: Mapping[str, tuple[str, str]] | None = None) -> Iterator[dict[str, EchoServer]]:
    """A started stand-in of every service (identity knowing ``users``' tokens) and of the docs app
    (the problem pages), by name, closed afterwards; ``backends_of(servers)`` routes a gateway to them."""
    servers = {service: EchoServer(service, users=users or {}).start() for service in SERVICES}
    servers["docs"] = EchoServer("docs").start()
    try:
        yield servers
    finally:
        for server in servers.values():
            server.close()


def backends_of(servers: Mapping[str, EchoServer]) -> dict[str, list[str]]:
    """Each service's stand-in as its one replica (``Gateway(backends=...)``)."""
    return {service: [servers[service].url] for service in SERVICES}
