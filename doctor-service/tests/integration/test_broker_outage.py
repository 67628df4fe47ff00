"""A broker outage delays doctor.profile.updated; it never fails an edit nor loses the event."""

from fastapi.testclient import TestClient

from doctor.config import Settings
from doctor.main import create_app


def test_an_edit_succeeds_while_the_broker_is_down_and_is_published_once_it_is_back(
    database_url, amqp_url, minter, callers, add_doctor, profile_events, tcp_proxy, wait_until
):
    broker = tcp_proxy(amqp_url)
    broker.cut()
    app = create_app(Settings(database_url=database_url, amqp_url=broker.url(amqp_url)))
    minter.trust(app, "doctor")
    add_doctor(20_007, "Chris Taub")
    with TestClient(app) as client:
        response = client.patch(
            "/api/doctors/me/", json={"bio": "Plastic surgeon."}, headers=callers("doctor", 20_007).headers
        )
        assert response.status_code == 200
        broker.restore()
        _, envelope = profile_events.next_message()
    assert envelope["data"]["doctor_id"] == 20_007
    assert envelope["data"]["bio"] == "Plastic surgeon."
