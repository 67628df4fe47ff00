"""Readiness: the database is required, the broker only reported (events wait in the outbox)."""

import socket
import threading
import time
from contextlib import suppress

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from chassis.db import Database
from chassis.health import BrokerUnreachable, amqp_check, health_router

UNREACHABLE_DATABASE = "postgresql+psycopg://postgres@127.0.0.1:1/nowhere?connect_timeout=1"
UNREACHABLE_BROKER = "amqp://guest:guest@127.0.0.1:1/%2F"


def _client(database_url: str, amqp_url: str) -> TestClient:
    app = FastAPI()
    app.include_router(
        health_router({"database": Database(database_url).ping, "broker": amqp_check(amqp_url)})
    )
    return TestClient(app)


def test_a_service_with_its_database_and_broker_is_ready(new_database, amqp_url):
    ready = _client(new_database(), amqp_url).get("/health/ready")

    assert ready.status_code == 200
    assert ready.json() == {"status": "ok", "checks": {"database": "ok", "broker": "ok"}}


def test_a_service_without_its_broker_stays_ready_and_says_it_is_degraded(new_database):
    ready = _client(new_database(), UNREACHABLE_BROKER).get("/health/ready")

    assert ready.status_code == 200
    assert ready.json() == {"status": "degraded", "checks": {"database": "ok", "broker": "unavailable"}}


def test_a_service_without_its_database_is_not_ready_but_still_live(amqp_url):
    client = _client(UNREACHABLE_DATABASE, amqp_url)

    ready = client.get("/health/ready")
    assert ready.status_code == 503
    assert ready.json() == {"status": "unavailable", "checks": {"database": "unavailable", "broker": "ok"}}
    assert client.get("/health/live").status_code == 200


class SilentServer:
    """Accepts TCP connections and never answers: a broker that stalls in the AMQP handshake."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with suppress(OSError):
            while True:
                self.accepted.append(self.sock.accept()[0])

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.sock.getsockname()[1]}/%2F"

    def close(self) -> None:
        self.sock.close()
        for connection in self.accepted:
            connection.close()


def test_a_broker_that_stalls_makes_the_check_fail_within_its_time_limit_not_pikas():
    # The gateway gives /health/ready 3 s; pika's own handshake limit is 15 s.
    silent = SilentServer()
    try:
        check = amqp_check(silent.url, timeout=1.0)
        started = time.monotonic()
        with pytest.raises(BrokerUnreachable):
            check()
        assert time.monotonic() - started < 3
    finally:
        silent.close()


def test_the_broker_is_asked_at_most_once_per_cache_period_and_its_answer_kept():
    silent = SilentServer()
    try:
        check = amqp_check(silent.url, timeout=0.5, cache_seconds=60)
        for _ in range(3):
            with pytest.raises(BrokerUnreachable):
                check()
        assert len(silent.accepted) == 1
    finally:
        silent.close()
