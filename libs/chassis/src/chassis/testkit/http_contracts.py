"""Internal HTTP contracts (``contracts/http/<name>.json``), checked by both sides' tests.

Each file names one internal operation: its ``method`` and ``path`` (a template), its
``provider`` and ``consumers``, the JSON Schema of its ``request`` body (or null) and one
schema per answered status under ``responses`` (a 204's body is ``{"type": "null"}``). The
provider's tests call its endpoints through ``checked(client)``, which checks every request
they send and every answer they get; a consumer's stand-in checks what it receives and answers
with ``HttpContract.check_request`` / ``check_response``. Either side drifting fails a test.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from chassis.messaging.contracts import FORMAT_CHECKER, ContractError, find_contracts_dir

HTTP_DIR = "http"


class HttpContract:
    """One internal operation's contract."""

    def __init__(self, name: str, document: dict[str, Any]) -> None:
        self.name = name
        self.method: str = document["method"]
        self.path: str = document["path"]
        self._pattern = re.compile("^" + re.sub(r"\{[^/]+\}", "[^/]+", self.path) + "$")
        self.request = document.get("request")
        self.responses: dict[str, dict[str, Any]] = document["responses"]
        for schema in [self.request, *self.responses.values()]:
            if schema is not None:
                Draft202012Validator.check_schema(schema)

    def matches(self, method: str, path: str) -> bool:
        return method.upper() == self.method and bool(self._pattern.match(path.split("?", 1)[0]))

    def check_request(self, body: Any) -> None:
        if self.request is None:
            if body is not None:
                raise ContractError(f"{self.name}: the request has no body, got {body!r}")
            return
        _validate(self.request, body, f"{self.name} request")

    def check_response(self, status: int, body: Any) -> None:
        schema = self.responses.get(str(status))
        if schema is None:
            raise ContractError(
                f"{self.name}: status {status} is not in the contract ({', '.join(self.responses)})"
            )
        _validate(schema, body, f"{self.name} {status} answer")


@cache
def http_contract(name: str, contracts_dir: Path | None = None) -> HttpContract:
    """The contract ``contracts/http/<name>.json``."""
    path = (contracts_dir or find_contracts_dir()) / HTTP_DIR / f"{name}.json"
    return HttpContract(name, json.loads(path.read_text(encoding="utf-8")))


def http_contracts_of(provider: str, contracts_dir: Path | None = None) -> list[HttpContract]:
    """Every contract ``provider`` serves."""
    directory = (contracts_dir or find_contracts_dir()) / HTTP_DIR
    contracts = [http_contract(path.stem, contracts_dir) for path in sorted(directory.glob("*.json"))]
    return [
        c for c in contracts if json.loads((directory / f"{c.name}.json").read_text())["provider"] == provider
    ]


class CheckedClient:
    """A test client whose calls to contracted paths are checked both ways (the provider's side)."""

    def __init__(self, client: Any, contracts: list[HttpContract]) -> None:
        self.client = client
        self.contracts = contracts

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        contract = next((c for c in self.contracts if c.matches(method, path)), None)
        if contract is None:
            raise ContractError(f"no internal HTTP contract for {method} {path}")
        contract.check_request(kwargs.get("json"))
        response = self.client.request(method, path, **kwargs)
        contract.check_response(response.status_code, response.json() if response.content else None)
        return response

    def post(self, path: str, **kwargs: Any) -> Any:
        return self._call("POST", path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> Any:
        return self._call("GET", path, **kwargs)


def checked(client: Any, provider: str) -> CheckedClient:
    """``client`` (a TestClient of ``provider``'s app) checking each internal call against the contracts."""
    return CheckedClient(client, http_contracts_of(provider))


def _validate(schema: dict[str, Any], instance: Any, what: str) -> None:
    error = best_match(Draft202012Validator(schema, format_checker=FORMAT_CHECKER).iter_errors(instance))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        raise ContractError(f"{what} violates its contract at {where}: {error.message}") from error
