"""Real servers for tests of what a service sends out: an HTTP receiver and an SMTP sink.

    with HttpReceiver() as receiver:
        receiver.script("/hook", [500, HANG, 200])   # answers of the first three requests
        ... receiver.requests("/hook") ...
    with SmtpSink() as sink:                          # aiosmtpd, on 127.0.0.1
        ... sink.messages ...
    with SmtpSink(tls="starttls", login=("clinic", "secret"), certificates=tmp_path) as sink:
        ... sink.url, sink.ca_file ...                # a relay as clinics run them

Both listen on 127.0.0.1 and a free port, record what they receive and answer as scripted;
``HANG`` holds the request open for ``hang_seconds`` before answering (a receiver that is too
slow); ``TRICKLE`` answers 200 at once and then sends its body a byte at a time, for
``hang_seconds``, and breaks off (a receiver that never finishes its answer);
``TRICKLE_HEADERS`` sends its status line and headers a byte at a time, never finishing them
within ``hang_seconds`` (a receiver that is always about to answer). Nothing here is a
fake of a project's own service: they stand for the outside world.
``self_signed(directory)`` writes a certificate for 127.0.0.1 (its own CA) and its key.
"""

from __future__ import annotations

import datetime
import email
import email.policy
import ipaddress
import ssl
import threading
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from chassis.testkit.ports import free_port

HANG = "hang"
TRICKLE = "trickle"
TRICKLE_HEADERS = "trickle-headers"
Answer = int | str


@dataclass(frozen=True, slots=True)
class ReceivedRequest:
    path: str
    headers: dict[str, str]
    body: bytes
    received_at: float
    # What the receiver answered (a status, HANG or TRICKLE).
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
                if answer == TRICKLE:
                    receiver._trickle(self)
                    return
                if answer == TRICKLE_HEADERS:
                    receiver._trickle_headers(self)
                    return
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

    def _trickle(self, handler: BaseHTTPRequestHandler) -> None:
        try:
            handler.send_response(200)
            handler.send_header("content-type", "application/json")
            handler.send_header("content-length", "100000")
            handler.end_headers()
            ends = time.monotonic() + self.hang_seconds
            while time.monotonic() < ends and not self._closing.wait(0.25):
                handler.wfile.write(b" ")
                handler.wfile.flush()
        except OSError:
            pass  # the client stopped reading
        handler.close_connection = True

    def _trickle_headers(self, handler: BaseHTTPRequestHandler) -> None:
        head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-padding: "
        ends = time.monotonic() + self.hang_seconds
        try:
            while time.monotonic() < ends and not self._closing.wait(0.25):
                handler.wfile.write(head[:1] if head else b"x")
                handler.wfile.flush()
                head = head[1:]
        except OSError:
            pass  # the client stopped reading
        handler.close_connection = True

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


def self_signed(directory: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """A certificate for ``host`` that is its own CA (valid for a day) and its key, as PEM files
    in ``directory``: trust the first (``cafile=``) and a client verifies the server for real."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "clinic.test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


@dataclass(frozen=True, slots=True)
class ReceivedMail:
    sender: str
    recipients: list[str]
    message: EmailMessage
    # How it came: over TLS (STARTTLS or smtps) or not, and the user it logged in as (or None).
    encrypted: bool = False
    login: str | None = None


class SmtpSink:
    """An aiosmtpd server on 127.0.0.1 that keeps every message; ``refuse(n)`` answers the next
    ``n`` messages with a temporary failure (451), as a mail server that is struggling does.

    ``tls="starttls"`` requires STARTTLS before anything else, ``tls="smtps"`` speaks TLS from
    the first byte; either with a certificate of its own, written to ``certificates`` (its
    ``ca_file`` is what a client must trust). ``login=(user, password)`` requires that login
    (offered only over TLS) before a mail is taken. ``url`` says all of it as an ``SMTP_URL``.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: Literal["starttls", "smtps"] | None = None,
        login: tuple[str, str] | None = None,
        certificates: Path | None = None,
    ) -> None:
        if tls is not None and certificates is None:
            raise ValueError("a TLS sink needs a directory for its certificate (certificates=)")
        self.host = host
        self.port = port or free_port(host)  # known before the server starts
        self.tls = tls
        self.login = login
        self.ca_file: Path | None = None
        self._context: ssl.SSLContext | None = None
        if tls is not None and certificates is not None:
            self.ca_file, key_file = self_signed(certificates, host)
            self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self._context.load_cert_chain(self.ca_file, key_file)
        self._lock = threading.Lock()
        self._messages: list[ReceivedMail] = []
        self._refusals = 0
        self._controller: Any = None

    def refuse(self, count: int) -> None:
        with self._lock:
            self._refusals = count

    @property
    def url(self) -> str:
        credentials = (
            f"{quote(self.login[0], safe='')}:{quote(self.login[1], safe='')}@" if self.login else ""
        )
        scheme = "smtps" if self.tls == "smtps" else "smtp"
        query = "?starttls=true" if self.tls == "starttls" else ""
        return f"{scheme}://{credentials}{self.host}:{self.port}{query}"

    @property
    def messages(self) -> list[ReceivedMail]:
        with self._lock:
            return list(self._messages)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's name)
        with self._lock:
            if self._refusals > 0:
                self._refusals -= 1
                return "451 4.3.0 try again later"
            message = email.message_from_bytes(envelope.content, policy=email.policy.default)
            login = session.auth_data.decode() if isinstance(session.auth_data, bytes) else None
            encrypted = server.transport.get_extra_info("ssl_object") is not None
            self._messages.append(
                ReceivedMail(envelope.mail_from, list(envelope.rcpt_tos), message, encrypted, login)
            )
        return "250 OK"

    def _authenticate(
        self, _server: Any, _session: Any, _envelope: Any, mechanism: str, auth_data: Any
    ) -> Any:
        from aiosmtpd.smtp import AuthResult, LoginPassword

        if (
            self.login is not None
            and mechanism in {"LOGIN", "PLAIN"}
            and isinstance(auth_data, LoginPassword)
            and (auth_data.login.decode(), auth_data.password.decode()) == self.login
        ):
            return AuthResult(success=True, auth_data=auth_data.login)
        return AuthResult(success=False, handled=False)

    def start(self) -> SmtpSink:
        from aiosmtpd.controller import Controller

        options: dict[str, Any] = {}
        if self.tls == "starttls":
            options.update(tls_context=self._context, require_starttls=True)
        elif self.tls == "smtps":
            options.update(ssl_context=self._context)
        if self.login is not None:
            # aiosmtpd counts only STARTTLS as encryption (and warns of a login without it); smtps
            # is TLS from the first byte.
            options.update(
                authenticator=self._authenticate, auth_required=True, auth_require_tls=self.tls == "starttls"
            )
            warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS", UserWarning)
        self._controller = Controller(self, hostname=self.host, port=self.port, **options)
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
