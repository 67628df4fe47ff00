"""Schemathesis hooks of the robustness fuzzer (loaded by ``st`` through SCHEMATHESIS_HOOKS).

The run's context (a JSON file named by ROBUSTNESS_FUZZ_CONTEXT) gives the ids of the users
the fuzzer is authenticated as, a victim user, and for stateful runs the token of each role
and the role of each operation.
"""

from __future__ import annotations

import json
import os
import re
from functools import cache
from typing import Any
from urllib.parse import urlsplit

import schemathesis

# Percent-encoded characters the gateway refuses in paths with a bare 400 (gateway/run.sh).
REFUSED_ENCODINGS = re.compile(r"%(2f|5c|00|3b|25|3f|23)", re.IGNORECASE)


@cache
def context() -> dict[str, Any]:
    path = os.environ.get("ROBUSTNESS_FUZZ_CONTEXT")
    if not path:
        return {"protected_user_ids": []}
    with open(path) as file:
        return json.load(file)


@schemathesis.hook
def before_call(ctx: schemathesis.HookContext, case: schemathesis.Case, kwargs: dict[str, Any]) -> None:
    # An admin fuzzing /api/users/{id}/ must not deactivate or demote the users the suite is
    # authenticated as: their ids (generated as numbers or as text, in any phase) become a
    # victim's. Done just before each call, so that no phase or link gets around it.
    protected = {str(i) for i in context()["protected_user_ids"]}
    parameters = case.path_parameters
    if isinstance(parameters, dict) and str(parameters.get("user_id", "")).strip() in protected:
        case.path_parameters = parameters = {**parameters, "user_id": context()["victim_user_id"]}
    # The suite's doctors keep their profiles and booking policies: an admin's PATCH of either
    # (a limit of two upcoming appointments, a day's notice) would change what later tests can
    # book. A waitlist entry for one of them would be offered (and hold) the next timeslot
    # another test makes for that doctor. The fuzzer uses its own doctor for all of these.
    if isinstance(parameters, dict) and str(parameters.get("doctor_id", "")).strip() in protected:
        case.path_parameters = {**parameters, "doctor_id": context()["fuzz_doctor_id"]}
    body = case.body
    if (
        case.operation.path == "/api/waitlist/"
        and isinstance(body, dict)
        and str(body.get("doctor_id", "")).strip() in protected
    ):
        case.body = {**body, "doctor_id": context()["fuzz_doctor_id"]}


class RoleOfOperation:
    """Stateful runs: each step carries the token of the role its operation is for."""

    def get(self, case: schemathesis.Case, ctx: Any) -> str | None:
        role = context()["roles_by_operation"].get(f"{case.operation.method.upper()} {case.operation.path}")
        return None if role is None else context()["tokens"][role]

    def set(self, case: schemathesis.Case, data: str, ctx: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


if "roles_by_operation" in context():
    # An auth provider, not a header set by a hook: Schemathesis then knows the token is
    # real, and its ignored-auth check still probes each operation without one.
    schemathesis.auth(refresh_interval=None)(RoleOfOperation)


@schemathesis.hook
def filter_failure(
    ctx: schemathesis.HookContext, failure: Any, case: schemathesis.Case, response: Any
) -> bool:
    # The gateway's deliberate refusal of ambiguous encodings in a path is not a failure.
    url = getattr(getattr(response, "request", None), "url", "") or ""
    refused = response.status_code == 400 and REFUSED_ENCODINGS.search(urlsplit(str(url)).path)
    return not refused
