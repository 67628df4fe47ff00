"""Validating envelopes and their data against the JSON Schemas in contracts/."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from chassis.messaging import Envelope
from chassis.messaging.contracts import (
    ContractError,
    MissingContract,
    find_contracts_dir,
    load_contracts,
    validate_envelope,
)

REPOSITORY_CONTRACTS = find_contracts_dir(Path(__file__).parent)

BOOKED_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["appointment_id", "starts_at"],
    "properties": {
        "appointment_id": {"type": "string", "format": "uuid"},
        "starts_at": {"type": "string", "format": "date-time"},
    },
    "additionalProperties": False,
}


@pytest.fixture
def contracts(tmp_path: Path) -> Path:
    """The repository's envelope schema plus one test-only event schema."""
    shutil.copy(REPOSITORY_CONTRACTS / "envelope.schema.json", tmp_path / "envelope.schema.json")
    (tmp_path / "events").mkdir()
    (tmp_path / "events" / "test.appointment.booked.schema.json").write_text(json.dumps(BOOKED_SCHEMA))
    return tmp_path


def booked(**data) -> dict:
    data = {
        "appointment_id": "3f1c4b3e-8f4e-4c1e-9a57-0b8f2b7c1d2e",
        "starts_at": "2030-01-01T09:00:00Z",
    } | data
    return Envelope.new("test.appointment.booked", data, producer="booking").to_json()


def test_a_valid_envelope_and_data_pass(contracts):
    validate_envelope(booked(), contracts)


def test_an_envelope_with_or_without_a_correlation_id_passes(contracts):
    validate_envelope(booked() | {"correlation_id": "req-1"}, contracts)
    validate_envelope(booked() | {"correlation_id": None}, contracts)


def test_data_that_breaks_its_schema_is_rejected(contracts):
    with pytest.raises(ContractError, match="starts_at"):
        validate_envelope(booked(starts_at="tomorrow morning"), contracts)
    with pytest.raises(ContractError, match="password"):
        validate_envelope(booked(password="secret"), contracts)


def test_an_envelope_that_breaks_the_envelope_schema_is_rejected(contracts):
    with pytest.raises(ContractError, match="occurred_at"):
        validate_envelope(booked() | {"occurred_at": "2030-01-01 09:00"}, contracts)
    with pytest.raises(ContractError):
        validate_envelope(booked() | {"extra": 1}, contracts)


def test_an_event_type_without_a_schema_is_rejected(contracts):
    envelope = Envelope.new("test.appointment.vanished", {}, producer="booking").to_json()
    with pytest.raises(MissingContract):
        validate_envelope(envelope, contracts)


def test_load_contracts_maps_event_types_to_schemas(contracts):
    assert load_contracts(contracts) == {"test.appointment.booked": BOOKED_SCHEMA}
