from fastapi.testclient import TestClient

from booking.config import Settings
from booking.main import create_app


def test_readiness_reports_the_database_the_broker_and_the_credentials(database_url, amqp_url, minter):
    app = create_app(Settings(database_url=database_url, amqp_url=amqp_url))
    minter.trust(app, "booking")
    with TestClient(app) as client:
        assert client.get("/health/live").json() == {"status": "ok"}
        ready = client.get("/health/ready")
        assert ready.status_code == 200
        assert ready.json() == {
            "status": "ok",
            "checks": {
                "database": "ok",
                "broker": "ok",
                "token_revocations": "ok",
                "credential_for_scheduling": "ok",
            },
        }


def test_without_a_service_credential_the_service_says_so_and_books_nothing(
    database_url, amqp_url, minter, new_id
):
    # No identity answers at IDENTITY_URL: no service token, so no call to scheduling is made.
    settings = Settings(
        database_url=database_url, amqp_url=amqp_url, identity_url="http://127.0.0.1:1", service_secret="x"
    )
    app = create_app(settings)
    app.state.token_verifier = minter.verifier(app.state.trust.revocations)
    with TestClient(app) as client:
        ready = client.get("/health/ready")
        assert ready.status_code == 200  # reads still work
        assert ready.json()["status"] == "degraded"
        assert ready.json()["checks"]["credential_for_scheduling"] == "unavailable"
        response = client.post(
            "/api/appointments/", json={"timeslot_id": 1}, headers=minter.headers(new_id(), "patient")
        )
        assert response.status_code == 503
        assert response.json()["code"] == "scheduling_unavailable"


def test_the_service_stays_ready_but_degraded_while_the_broker_is_unreachable(database_url, minter):
    app = create_app(Settings(database_url=database_url, amqp_url="amqp://guest:guest@127.0.0.1:1/%2F"))
    minter.trust(app, "booking")
    with TestClient(app) as client:
        ready = client.get("/health/ready")
        assert ready.status_code == 200
        assert ready.json()["status"] == "degraded"
        assert ready.json()["checks"]["broker"] == "unavailable"
