"""Booking keeps its promises when the broker is away: 201 now, events once it is back."""

from __future__ import annotations

from fastapi.testclient import TestClient

from booking.main import create_app
from chassis.testkit import Broker, wait_until

from ..conftest import ALEMBIC_INI
from .conftest import make_settings


def test_booking_works_while_the_broker_is_down_and_the_event_follows_when_it_returns(
    make_migrated_database, amqp_url, scheduling, minter, new_id, tcp_proxy
):
    # A database of its own: the session's app would otherwise publish this outbox too.
    database_url = make_migrated_database(ALEMBIC_INI, "booking_outage")
    proxy = tcp_proxy(amqp_url)
    app = create_app(make_settings(database_url, proxy.url(amqp_url), scheduling_url=scheduling.url))
    minter.trust(app, "booking")
    watcher = Broker(amqp_url).watch("booking.appointment.*")
    slot = new_id()
    scheduling.add_timeslot(slot, new_id())
    try:
        with TestClient(app) as client:
            assert app.state.outbox_relay.wait_ready(30)
            proxy.cut()

            response = client.post(
                "/api/appointments/", json={"timeslot_id": slot}, headers=minter.headers(new_id(), "patient")
            )
            assert response.status_code == 201
            appointment_id = response.json()["id"]
            assert watcher.published("booking.appointment.booked", appointment_id=appointment_id) == []

            proxy.restore()
            wait_until(
                lambda: watcher.published("booking.appointment.booked", appointment_id=appointment_id),
                timeout=60,
            )
    finally:
        watcher.close()
