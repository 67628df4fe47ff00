"""Event contracts: JSON Schemas in ``contracts/`` that producers' tests validate against.

``contracts/envelope.schema.json`` describes the envelope;
``contracts/events/<event_type>.schema.json`` describes the ``data`` of one event type.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import best_match

ENVELOPE_SCHEMA = "envelope.schema.json"
EVENTS_DIR = "events"
_SUFFIX = ".schema.json"

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")

# jsonschema checks "date-time" only with an optional extra package; check it here (RFC 3339).
FORMAT_CHECKER = FormatChecker()
for _name, _check in Draft202012Validator.FORMAT_CHECKER.checkers.items():
    FORMAT_CHECKER.checkers[_name] = _check


@FORMAT_CHECKER.checks("date-time", raises=ValueError)
def _is_datetime(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _RFC3339.match(value):
        return False
    datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    return True


class ContractError(ValueError):
    """An envelope or its data does not satisfy the contracts."""


class MissingContract(ContractError):
    """No schema exists for an event type."""


def load_contracts(contracts_dir: str | Path) -> dict[str, dict[str, Any]]:
    """Every event type's data schema under ``contracts_dir/events``, keyed by event type.

    Each schema is checked to be a valid JSON Schema 2020-12 document.
    """
    contracts: dict[str, dict[str, Any]] = {}
    for path in sorted((Path(contracts_dir) / EVENTS_DIR).glob(f"*{_SUFFIX}")):
        contracts[path.name.removesuffix(_SUFFIX)] = _load_schema(path)
    return contracts


def validate_envelope(envelope_json: dict[str, Any], contracts_dir: str | Path) -> None:
    """Validate an envelope (``Envelope.to_json()``) and its ``data`` against the contracts.

    Raises ``MissingContract`` when its event type has no schema, ``ContractError``
    (with the most relevant violation) when either part is invalid.
    """
    contracts_dir = Path(contracts_dir)
    _validate(_load_schema(contracts_dir / ENVELOPE_SCHEMA), envelope_json, "envelope")
    event_type = envelope_json["event_type"]
    schema_path = contracts_dir / EVENTS_DIR / f"{event_type}{_SUFFIX}"
    if not schema_path.is_file():
        raise MissingContract(f"no contract for event type {event_type!r}: expected {schema_path}")
    _validate(_load_schema(schema_path), envelope_json["data"], f"{event_type} data")


def find_contracts_dir(start: str | Path | None = None) -> Path:
    """The nearest ``contracts/`` directory holding the envelope schema, from ``start`` upwards."""
    here = Path(start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        candidate = directory / "contracts"
        if (candidate / ENVELOPE_SCHEMA).is_file():
            return candidate
    raise FileNotFoundError(f"no contracts/{ENVELOPE_SCHEMA} above {here}")


def _load_schema(path: Path) -> dict[str, Any]:
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ContractError(f"cannot read the schema {path}: {exc}") from exc
    Draft202012Validator.check_schema(schema)
    return schema


def _validate(schema: dict[str, Any], instance: Any, what: str) -> None:
    error = best_match(Draft202012Validator(schema, format_checker=FORMAT_CHECKER).iter_errors(instance))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        raise ContractError(f"{what} violates its contract at {where}: {error.message}") from error
