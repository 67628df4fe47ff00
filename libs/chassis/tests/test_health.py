"""Readiness: the database is required, the broker only reported (events wait in the outbox)."""

from fastapi import FastAPI
from fastapi.testclient import TestClient

from chassis.db import Database
from chassis.health import amqp_check, health_router

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
