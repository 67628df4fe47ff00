"""Schema fuzzing through the gateway: every public operation of every service, as each role.

Schemathesis generates valid and invalid requests from the services' own OpenAPI documents
(examples, boundary values, random data) and checks every answer: no 5xx, only documented
statuses and content types, bodies that match the documented schemas, invalid data refused,
401 without a token, 405 (with a truthful ``Allow``) for undocumented methods. The stateful
run follows links: register → login → refresh, a timeslot → its booking → confirm/cancel.

``FUZZ_EXAMPLES`` sets the examples per operation (``make test``: a few; ``make fuzz``: many);
``FUZZ_SEED`` replays a run.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from ..e2e.api import new_user
from ..e2e.stack import Stack
from .fuzzing import merged_schema, run_schemathesis, stateful_roles
from .people import People, wait_for_doctor_profile

MAX_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "8"))
SEED = int(os.environ["FUZZ_SEED"]) if os.environ.get("FUZZ_SEED") else None


@pytest.fixture(scope="module")
def schema(stack: Stack) -> dict[str, Any]:
    return merged_schema(stack.base_url)


@pytest.fixture(scope="module")
def context(stack: Stack, people: People) -> dict[str, Any]:
    """The fuzzer's own users (what it does to them stays here), and every user to protect."""
    patient, doctor = new_user(stack, "patient", full_name="Fuzz Patient"), new_user(stack, "doctor")
    wait_for_doctor_profile(stack, doctor)
    victim = people.victim()
    everyone = [people.patient, people.other_patient, people.doctor, people.other_doctor, people.admin]
    return {
        "protected_user_ids": [user.id for user in (*everyone, people.deactivated, patient, doctor)],
        "victim_user_id": victim.id,
        "fuzz_doctor_id": doctor.id,
        "tokens": {"patient": patient.access, "doctor": doctor.access, "admin": people.admin.access},
    }


def _doctors_as_admin_sees_them(stack: Stack, people: People) -> dict[str, Any]:
    """The suite's doctors' profiles and booking policies: the fuzzer must leave them as they are."""
    seen = {}
    with stack.client(people.admin.access) as client:
        for doctor in (people.doctor, people.other_doctor):
            for path in (f"/api/doctors/{doctor.id}/", f"/api/doctors/{doctor.id}/booking-policy/"):
                response = client.get(path)
                assert response.status_code == 200, response.text
                seen[path] = response.json()
    return seen


@pytest.fixture
def suite_doctors_unchanged(stack: Stack, people: People):
    before = _doctors_as_admin_sees_them(stack, people)
    yield
    assert _doctors_as_admin_sees_them(stack, people) == before, "the fuzzer changed the suite's doctors"


def _report(result: Any) -> str:
    lines = (result.stdout + result.stderr).splitlines()
    return "\n".join(lines[-250:])


@pytest.mark.parametrize("role", ["anonymous", "patient", "doctor", "admin"])
@pytest.mark.usefixtures("suite_doctors_unchanged")
def test_every_operation_answers_as_documented_to_each_role(
    schema: dict[str, Any], context: dict[str, Any], role: str, tmp_path
):
    result = run_schemathesis(
        schema,
        workdir=tmp_path,
        label=role,
        context=context,
        token=context["tokens"].get(role),
        phases="examples,coverage,fuzzing",
        max_examples=MAX_EXAMPLES,
        seed=SEED,
    )
    assert result.returncode == 0, f"schemathesis found problems as {role}:\n{_report(result)}"


@pytest.mark.usefixtures("suite_doctors_unchanged")
def test_linked_operations_answer_as_documented_in_sequence(
    schema: dict[str, Any], context: dict[str, Any], tmp_path
):
    result = run_schemathesis(
        schema,
        workdir=tmp_path,
        label="stateful",
        context={**context, "roles_by_operation": stateful_roles()},
        token=None,
        phases="stateful",
        max_examples=MAX_EXAMPLES,
        seed=SEED,
    )
    assert result.returncode == 0, f"schemathesis found problems in linked sequences:\n{_report(result)}"
