"""The TCP proxy tests use to take a server away and bring it back."""

from __future__ import annotations

import socket
import threading

import pytest

from chassis.testkit import TcpProxy


@pytest.fixture
def echo_server():
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(5)

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                while data := conn.recv(1024):
                    conn.sendall(data)

    threading.Thread(target=serve, daemon=True).start()
    yield server.getsockname()[1]
    server.close()


def test_a_cut_proxy_drops_connections_and_refuses_new_ones_until_restored(echo_server):
    with TcpProxy("127.0.0.1", echo_server) as proxy:
        client = socket.create_connection((proxy.host, proxy.port), timeout=2)
        client.sendall(b"hello")
        assert client.recv(5) == b"hello"

        proxy.cut()
        assert client.recv(5) == b""
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((proxy.host, proxy.port), timeout=2)

        proxy.restore()
        with socket.create_connection((proxy.host, proxy.port), timeout=2) as again:
            again.sendall(b"back")
            assert again.recv(4) == b"back"
        client.close()


def test_a_proxy_rewrites_a_server_url_to_point_at_itself():
    proxy = TcpProxy.for_url("amqp://guest:guest@10.0.0.5/vhost")
    assert proxy.target == ("10.0.0.5", 5672)
    assert (
        proxy.url("amqp://guest:guest@10.0.0.5/vhost") == f"amqp://guest:guest@127.0.0.1:{proxy.port}/vhost"
    )
    assert TcpProxy.for_url("postgresql+psycopg://postgres@db/x").target == ("db", 5432)
