"""Internal HTTP contracts (contracts/http): every one loads as valid JSON Schemas, and a call that
leaves its contract fails the test that made it."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from chassis.messaging.contracts import ContractError, find_contracts_dir
from chassis.testkit.http_contracts import HTTP_DIR, checked, http_contract


def test_every_internal_contract_is_valid_and_names_its_provider_and_path():
    names = [path.stem for path in sorted((find_contracts_dir() / HTTP_DIR).glob("*.json"))]
    assert names
    for name in names:
        contract = http_contract(name)
        assert contract.method in {"GET", "POST"}
        assert contract.path.startswith("/internal/")


def test_an_answer_outside_the_contract_fails():
    app = FastAPI()

    @app.post("/internal/timeslots/{timeslot_id}/hold")
    def hold(timeslot_id: int) -> dict:
        return {"timeslot_id": timeslot_id}  # lacks what the contract requires

    with TestClient(app) as client, pytest.raises(ContractError, match="200 answer"):
        body = {"reservation_id": "3fa85f64-5717-4562-b3fc-2c963f66afa6", "patient_id": 7}
        checked(client, "scheduling").post("/internal/timeslots/1/hold", json=body)


def test_a_request_outside_the_contract_fails_before_it_is_sent():
    with pytest.raises(ContractError, match="request"):
        http_contract("scheduling.timeslot.hold").check_request(
            {"reservation_id": "not-a-uuid", "patient_id": 7}
        )
