from fastapi.testclient import TestClient

from chassis.testkit.health import readiness
from doctor.config import Settings
from doctor.main import create_app


def test_readiness_reports_the_database_and_the_broker(database_url, amqp_url):
    with TestClient(create_app(Settings(database_url=database_url, amqp_url=amqp_url))) as client:
        status, body = readiness(client)
    assert (status, body["checks"]) == (200, {"database": "ok", "broker": "ok", "token_revocations": "ok"})


def test_the_service_stays_ready_but_degraded_while_the_broker_is_unreachable(database_url):
    app = create_app(Settings(database_url=database_url, amqp_url="amqp://guest:guest@127.0.0.1:1/%2F"))
    with TestClient(app) as client:
        ready = client.get("/health/ready")
        assert ready.status_code == 200
        assert ready.json() == {
            "status": "degraded",
            "checks": {"database": "ok", "broker": "unavailable", "token_revocations": "ok"},
        }
