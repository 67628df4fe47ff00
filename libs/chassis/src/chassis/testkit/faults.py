"""Faults a test can cause: a TCP proxy in front of a server, cut and restored at will."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import suppress
from urllib.parse import urlsplit, urlunsplit

import pytest

from chassis.testkit.ports import free_port


class TcpProxy:
    """A small threaded TCP proxy from ``127.0.0.1:<port>`` to ``target_host:target_port``.

    ``cut()`` closes every proxied connection and stops listening (new connections
    are refused), as if the server had gone away; ``restore()`` listens again on the
    same port. Point a client at ``proxy.url(server_url)`` to put the proxy in between.
    """

    def __init__(self, target_host: str, target_port: int, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.target = (target_host, target_port)
        self.host = host
        self.port = port or free_port(host)
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
