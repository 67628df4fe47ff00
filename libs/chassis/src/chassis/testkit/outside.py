"""Real servers for tests of what a service sends out: an HTTP receiver and an SMTP sink.

    with HttpReceiver() as receiver:
        receiver.script("/hook", [500, HANG, 200])   # answers of the first three requests
        ... receiver.requests("/hook") ...
    with SmtpSink() as sink:                          # aiosmtpd, on 127.0.0.1
        ... sink.messages ...

Both listen on 127.0.0.1 and a free port, record what they receive and answer as scripted;
``HANG`` holds the request open for ``hang_seconds`` before answering (a receiver that is too
slow). Nothing here is a fake of a project's own service: they stand for the outside world.
"""

from __future__ import annotations

import email
import email.policy
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from chassis.testkit.ports import free_port

HANG = "hang"
Answer = int | str


@dataclass(frozen=True, slots=True)
class ReceivedRequest:
    path: str
    headers: dict[str, str]
    body: bytes
    received_at: float
    # What the receiver answered (a status, or HANG).
    answer: Answer


@dataclass
class _Script:
    answers: list[Answer] = field(default_factory=list)


class HttpReceiver:
    """A threaded HTTP server recording every POST and answering from a script (else 200)."""

    def __init__(self, *, hang_seconds: float = 15.0, host: str = "127.0.0.1", port: int = 0) -> None:
        self.hang_seconds = hang_seconds
        self._lock = threading.Lock()
        self._scripts: dict[str, _Script] = {}
        self._requests: list[ReceivedRequest] = []
        self._closing = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                answer = receiver._next_answer(self.path)
                receiver._record(
                    ReceivedRequest(
                        self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.time(), answer
                    )
                )
                if answer == HANG:
                    receiver._closing.wait(receiver.hang_seconds)
                    answer = 200
                payload = b'{"ok": true}' if 200 <= int(answer) < 300 else b"receiver says no"
                try:
                    self.send_response(int(answer))
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass  # the client gave up waiting (a hang)

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, name="http-receiver", daemon=True)

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def script(self, path: str, answers: Iterable[Answer]) -> None:
        """The answers to the next requests to ``path``, in order; after them, 200."""
        with self._lock:
            self._scripts[path] = _Script(list(answers))

    def requests(self, path: str | None = None) -> list[ReceivedRequest]:
        with self._lock:
            return [r for r in self._requests if path is None or r.path == path]

    def _next_answer(self, path: str) -> Answer:
        with self._lock:
            script = self._scripts.get(path)
            return script.answers.pop(0) if script and script.answers else 200

    def _record(self, request: ReceivedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def start(self) -> HttpReceiver:
        self._thread.start()
        return self

    def close(self) -> None:
        self._closing.set()
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> HttpReceiver:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.close()


@dataclass(frozen=True, slots=True)
class ReceivedMail:
    sender: str
    recipients: list[str]
    message: EmailMessage


class SmtpSink:
    """An aiosmtpd server on 127.0.0.1 that keeps every message; ``refuse(n)`` answers the next
    ``n`` messages with a temporary failure (451), as a mail server that is struggling does."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port or free_port(host)  # known before the server starts
        self._lock = threading.Lock()
        self._messages: list[ReceivedMail] = []
        self._refusals = 0
        self._controller: Any = None

    def refuse(self, count: int) -> None:
        with self._lock:
            self._refusals = count

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    @property
    def messages(self) -> list[ReceivedMail]:
        with self._lock:
            return list(self._messages)

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's name)
        with self._lock:
            if self._refusals > 0:
                self._refusals -= 1
                return "451 4.3.0 try again later"
            message = email.message_from_bytes(envelope.content, policy=email.policy.default)
            self._messages.append(ReceivedMail(envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 OK"

    def start(self) -> SmtpSink:
        from aiosmtpd.controller import Controller

        self._controller = Controller(self, hostname=self.host, port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
