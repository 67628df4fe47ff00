"""Schema fuzzing of the whole API through the gateway with Schemathesis.

``merged_schema`` joins the five services' OpenAPI documents (read through the gateway,
as a client reads them) into one, each service's components under a prefix of its own,
and adds OpenAPI links for stateful runs: register → login → refresh/logout, a doctor's
timeslot → a patient's booking → reading, confirming and cancelling it.

``run_schemathesis`` runs the ``st`` command line on it, authenticated as one role (or, for
the stateful phase, as whichever role each operation is for), with ``schemathesis_hooks``
loaded: they keep the fuzzer from deactivating the very users it is authenticated as, pick
the token of each stateful step, and drop the gateway's own refusal of encoded path
characters (a deliberate 400 without a body, see gateway/run.sh).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from .access import OPERATIONS

ROOT = Path(__file__).resolve().parents[2]
ST = Path(sys.executable).parent / "st"
SERVICES = ("identity", "doctor", "scheduling", "booking", "notification")
HOOKS_MODULE = "tests.robustness.schemathesis_hooks"
CONTEXT_VARIABLE = "ROBUSTNESS_FUZZ_CONTEXT"

# Checks that do not fit this API, and why:
# - positive_data_acceptance: schema-valid requests still meet business rules (a weak
#   password, an unknown timeslot id, an overlap) and rightly get 4xx;
# - use_after_free: DELETE of an appointment cancels it, and the record stays readable;
# - object_level_authorization: needs two users' auth per run; the matrix covers it.
EXCLUDED_CHECKS = ("positive_data_acceptance", "use_after_free", "object_level_authorization")

# (source operation, status, link name, target operation, parameters, requestBody)
LINKS: tuple[tuple[str, str, str, str, dict[str, str], Any], ...] = (
    (
        "POST /api/auth/register/",
        "201",
        "LogIn",
        "POST /api/auth/login/",
        {},
        {"email": "$response.body#/email", "password": "$request.body#/password"},
    ),
    (
        "POST /api/auth/register/",
        "201",
        "ReadUser",
        "GET /api/users/{user_id}/",
        {"user_id": "$response.body#/id"},
        None,
    ),
    (
        "POST /api/auth/login/",
        "200",
        "Refresh",
        "POST /api/auth/token/refresh/",
        {},
        {"refresh": "$response.body#/refresh"},
    ),
    (
        "POST /api/auth/login/",
        "200",
        "LogOut",
        "POST /api/auth/logout/",
        {},
        {"refresh": "$response.body#/refresh"},
    ),
    (
        "POST /api/auth/token/refresh/",
        "200",
        "RefreshAgain",
        "POST /api/auth/token/refresh/",
        {},
        {"refresh": "$response.body#/refresh"},
    ),
    (
        "POST /api/timeslots/",
        "201",
        "ReadTimeslot",
        "GET /api/timeslots/{timeslot_id}/",
        {"timeslot_id": "$response.body#/id"},
        None,
    ),
    (
        "POST /api/timeslots/",
        "201",
        "DeleteTimeslot",
        "DELETE /api/timeslots/{timeslot_id}/",
        {"timeslot_id": "$response.body#/id"},
        None,
    ),
    (
        "POST /api/timeslots/",
        "201",
        "Book",
        "POST /api/appointments/",
        {},
        {"timeslot_id": "$response.body#/id"},
    ),
    (
        "POST /api/timeslots/",
        "201",
        "FreeTimeslots",
        "GET /api/doctors/{doctor_id}/timeslots/",
        {"doctor_id": "$response.body#/doctor_id"},
        None,
    ),
    (
        "POST /api/timeslots/bulk/",
        "201",
        "BookFirst",
        "POST /api/appointments/",
        {},
        {"timeslot_id": "$response.body#/created/0/id"},
    ),
    (
        "POST /api/appointments/",
        "201",
        "ReadAppointment",
        "GET /api/appointments/{appointment_id}/",
        {"appointment_id": "$response.body#/id"},
        None,
    ),
    (
        "POST /api/appointments/",
        "201",
        "ChangeStatus",
        "PATCH /api/appointments/{appointment_id}/status/",
        {"appointment_id": "$response.body#/id"},
        None,
    ),
    (
        "POST /api/appointments/",
        "201",
        "Cancel",
        "DELETE /api/appointments/{appointment_id}/",
        {"appointment_id": "$response.body#/id"},
        None,
    ),
    (
        "POST /api/appointments/",
        "201",
        "ReadDoctor",
        "GET /api/doctors/{doctor_id}/",
        {"doctor_id": "$response.body#/doctor_id"},
        None,
    ),
    (
        "GET /api/doctors/me/",
        "200",
        "OwnFreeTimeslots",
        "GET /api/doctors/{doctor_id}/timeslots/",
        {"doctor_id": "$response.body#/id"},
        None,
    ),
)


def fetch_documents(base_url: str) -> dict[str, dict[str, Any]]:
    """Each service's OpenAPI document, as the gateway serves it."""
    documents = {}
    with httpx.Client(base_url=base_url, timeout=15) as client:
        for service in SERVICES:
            response = client.get(f"/api/schema/{service}/openapi.json")
            response.raise_for_status()
            documents[service] = response.json()
    return documents


def _prefixed(node: Any, prefix: str) -> Any:
    if isinstance(node, dict):
        return {
            key: (
                value.replace("#/components/schemas/", f"#/components/schemas/{prefix}")
                if key == "$ref" and isinstance(value, str)
                else _prefixed(value, prefix)
            )
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_prefixed(item, prefix) for item in node]
    return node


def merged_schema(base_url: str, *, links: bool = True) -> dict[str, Any]:
    """One OpenAPI document with every public operation of every service (and links)."""
    merged: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "Clinic API (all services)", "version": "1.0.0"},
        "servers": [{"url": base_url}],
        "paths": {},
        "components": {"schemas": {}, "securitySchemes": {}},
    }
    for service, document in fetch_documents(base_url).items():
        prefix = f"{service}__"
        document = _prefixed(document, prefix)
        for path, item in document["paths"].items():
            assert path not in merged["paths"], f"{path} is documented by two services"
            merged["paths"][path] = item
        components = document.get("components", {})
        for name, schema in components.get("schemas", {}).items():
            merged["components"]["schemas"][prefix + name] = schema
        merged["components"]["securitySchemes"].update(components.get("securitySchemes", {}))
    if links:
        _add_links(merged)
    return merged


def _operation(schema: dict[str, Any], label: str) -> dict[str, Any]:
    method, path = label.split(" ", 1)
    return schema["paths"][path][method.lower()]


def _add_links(schema: dict[str, Any]) -> None:
    for source, status, name, target, parameters, body in LINKS:
        response = _operation(schema, source)["responses"][status]
        link: dict[str, Any] = {"operationId": _operation(schema, target)["operationId"]}
        if parameters:
            link["parameters"] = parameters
        if body is not None:
            link["requestBody"] = body
        response.setdefault("links", {})[name] = link


def run_schemathesis(
    schema: dict[str, Any],
    *,
    workdir: Path,
    label: str,
    context: dict[str, Any],
    token: str | None,
    phases: str,
    max_examples: int,
    seed: int | None = None,
    timeout: float = 900,
) -> subprocess.CompletedProcess[str]:
    """``st run`` on ``schema`` through the gateway; the completed process (output in stdout)."""
    workdir.mkdir(parents=True, exist_ok=True)
    schema_file = workdir / f"{label}-openapi.json"
    schema_file.write_text(json.dumps(schema))
    context_file = workdir / f"{label}-context.json"
    context_file.write_text(json.dumps(context))
    command = [
        str(ST),
        "run",
        str(schema_file),
        "--url",
        schema["servers"][0]["url"],
        "--phases",
        phases,
        "--max-examples",
        str(max_examples),
        "--checks",
        "all",
        "--exclude-checks",
        ",".join(EXCLUDED_CHECKS),
        # One worker: Python 3.11.7's ast.parse is not thread-safe (CPython gh-106905, "AST constructor
        # recursion depth mismatch"), and hypothesis parses lambdas' sources while building strategies.
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--generation-database",
        "none",
        "--no-color",
        "--warnings",
        "off",
    ]
    if token:
        command += ["--header", f"Authorization: Bearer {token}"]
    if seed is not None:
        command += ["--seed", str(seed)]
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": HOOKS_MODULE,
        CONTEXT_VARIABLE: str(context_file),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    return subprocess.run(
        command, cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def stateful_roles() -> dict[str, str]:
    """Operation label → the role whose token its stateful step carries (none for public ones)."""
    return {operation.label: operation.preferred_role() for operation in OPERATIONS if not operation.public}
