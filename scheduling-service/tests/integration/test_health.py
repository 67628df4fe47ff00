def test_readiness_reports_the_database_and_the_broker(make_client, amqp_url):
    with make_client(amqp_url=amqp_url) as client:
        assert client.get("/health/live").json() == {"status": "ok"}
        ready = client.get("/health/ready")
        assert ready.status_code == 200
        assert ready.json()["checks"] == {
            "database": "ok",
            "broker": "ok",
            "token_revocations": "ok",
            "credential_for_booking": "ok",
        }


def test_the_service_stays_ready_but_degraded_while_the_broker_is_unreachable(make_client):
    with make_client(amqp_url="amqp://guest:guest@127.0.0.1:1/%2F") as client:
        ready = client.get("/health/ready")
        assert ready.status_code == 200
        assert ready.json()["status"] == "degraded"
        assert ready.json()["checks"]["broker"] == "unavailable"
