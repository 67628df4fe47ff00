"""The event envelope's JSON form."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from chassis.messaging import Envelope


def valid_json() -> dict:
    return Envelope.new("booking.appointment.booked", {"appointment_id": 7}, producer="booking").to_json()


def test_an_envelope_survives_a_round_trip_through_json():
    envelope = Envelope.new(
        "booking.appointment.booked",
        {"appointment_id": 7},
        producer="booking",
        correlation_id="req-9",
        version=2,
    )
    assert Envelope.from_json(envelope.to_json()) == envelope
    assert envelope.to_json()["occurred_at"].endswith("Z")
    assert envelope.occurred_at.tzinfo is UTC


def test_data_is_stored_as_plain_json():
    doctor_id = uuid.uuid4()
    envelope = Envelope.new(
        "doctor.profile.updated",
        {"doctor_id": doctor_id, "fee": Decimal("12.50"), "at": datetime(2030, 1, 1, tzinfo=UTC)},
        producer="doctor",
    )
    assert envelope.data == {"doctor_id": str(doctor_id), "fee": "12.50", "at": "2030-01-01T00:00:00+00:00"}


def test_occurred_at_in_another_offset_is_read_as_utc():
    raw = valid_json() | {"occurred_at": "2030-01-01T10:00:00+02:00"}
    assert Envelope.from_json(raw).occurred_at == datetime(2030, 1, 1, 8, 0, tzinfo=UTC)
    assert Envelope.from_json(raw).occurred_at.utcoffset() == timedelta(0)


def test_unknown_keys_are_ignored_and_a_missing_correlation_id_is_none():
    raw = valid_json() | {"trace": "x"}
    del raw["correlation_id"]
    assert Envelope.from_json(raw).correlation_id is None


@pytest.mark.parametrize(
    "change",
    [
        {"event_id": "not-a-uuid"},
        {"event_id": 5},
        {"event_type": "Booking Booked"},
        {"event_type": "nodots"},
        {"event_type": "booking.#"},
        {"version": 0},
        {"version": True},
        {"version": "1"},
        {"occurred_at": "yesterday"},
        {"occurred_at": "2030-01-01T10:00:00"},
        {"occurred_at": "0001-01-01T00:00:00+05:00"},
        {"producer": ""},
        {"correlation_id": 5},
        {"data": []},
    ],
)
def test_a_malformed_envelope_is_rejected(change):
    with pytest.raises(ValueError):
        Envelope.from_json(valid_json() | change)


@pytest.mark.parametrize("value", [None, [], "text", 3])
def test_a_body_that_is_not_an_object_is_rejected(value):
    with pytest.raises(ValueError):
        Envelope.from_json(value)


def test_an_envelope_missing_a_field_is_rejected():
    raw = valid_json()
    del raw["data"]
    with pytest.raises(ValueError, match="data"):
        Envelope.from_json(raw)


def test_a_new_envelope_checks_its_event_type_producer_and_version():
    with pytest.raises(ValueError):
        Envelope.new("Bad Type", {}, producer="x")
    with pytest.raises(ValueError):
        Envelope.new("a.b", {}, producer="")
    with pytest.raises(ValueError):
        Envelope.new("a.b", {}, producer="x", version=0)
    assert Envelope.new("a.b.v2", {}, producer="x").event_type == "a.b.v2"


def test_an_envelope_is_immutable():
    envelope = Envelope.new("a.b", {}, producer="x", correlation_id=None)
    with pytest.raises(AttributeError):
        envelope.producer = "y"  # type: ignore[misc]
