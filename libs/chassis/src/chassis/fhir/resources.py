"""FHIR resources in and out: ``application/fhir+json`` answers and validated request bodies."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fhir.resources.R4B.resource import Resource
from pydantic import ValidationError

FHIR_JSON = "application/fhir+json"
FHIR_VERSION = "4.3.0"  # R4B: the models of fhir.resources.R4B
BASE_PATH = "/fhir"
MAX_ID = 2**63 - 1
# Any resource's id, as FHIR defines it (one of Clinic's or not).
FHIR_ID = r"[A-Za-z0-9.\-]{1,64}"
# Clinic's ids are its rows' numbers, written as Python writes them: no sign, no leading zero.
_OUR_ID = re.compile(r"[1-9][0-9]{0,18}")
ResourceT = TypeVar("ResourceT", bound=Resource)


class FhirResponse(Response):
    """A FHIR resource (a ``fhir.resources`` model, validated when built) as ``application/fhir+json``."""

    media_type = FHIR_JSON

    def render(self, content: Any) -> bytes:
        if isinstance(content, bytes):
            return content
        return content.model_dump_json(exclude_none=True).encode()


def fhir_base(request: Request) -> str:
    """The absolute FHIR base URL as the client reached it (the gateway's host), without a slash."""
    return str(request.base_url).rstrip("/") + BASE_PATH


def our_id(value: str) -> int | None:
    """The row a FHIR id names, or None when the id cannot be one of Clinic's (``abc``, ``0``,
    ``007``, a number past ``MAX_ID``): any FHIR id (``[A-Za-z0-9-.]{1,64}``) is a valid id, only
    not necessarily one of ours."""
    if _OUR_ID.fullmatch(value) is None or int(value) > MAX_ID:
        return None
    return int(value)


def read_id(resource_type: str, not_found: Callable[[str], Exception]) -> Any:
    """The ``{id}`` of a read (``GET /fhir/<resource_type>/{id}``) as the row's number:
    ``Annotated[int, Depends(...)]``. An id that is not one of ours names no resource: it raises
    the service's own not-found error (``not_found(detail)``, its 404), like an unknown number,
    never a 422."""

    # Only module-level names in the annotation: with postponed annotations FastAPI resolves them there.
    async def resource_id(id: Annotated[str, Path()]) -> int:
        found = our_id(id)
        if found is None:
            shown = id if len(id) <= 64 else id[:64] + "…"
            raise not_found(f"There is no {resource_type} {shown!r}.")
        return found

    return Annotated[int, Depends(resource_id)]


def invalid_resource(field: str, message: str) -> RequestValidationError:
    """A 422 about one element of a posted resource (``errors: [{field, message}]``, then an
    OperationOutcome issue with that element as its ``expression``)."""
    return RequestValidationError([{"loc": ("body", field), "msg": message, "type": "value_error"}])


def parse_resource(model: type[ResourceT], body: Any) -> ResourceT:
    """``body`` (parsed JSON) as a ``model`` resource, validated against the FHIR definitions;
    another resource type, or an invalid resource, is a 422 naming what is wrong.

    FHIR R4: a server SHALL refuse a resource whose ``implicitRules`` or ``modifierExtension`` it
    does not understand (they may change what the resource means); Clinic understands none, so
    either, anywhere in the resource (its elements, its contained resources), is a 422 too."""
    expected = model.get_resource_type()
    if not isinstance(body, dict) or body.get("resourceType") != expected:
        raise invalid_resource("resourceType", f"the body must be a FHIR {expected} resource")
    refused = _not_understood(body)
    if refused is not None:
        raise invalid_resource(*refused)
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise RequestValidationError(
            [
                {"loc": ("body", *error["loc"]), "msg": error["msg"], "type": error["type"]}
                for error in exc.errors()
            ]
        ) from None


# The elements that change a resource's meaning in ways only their author's rules say.
_MODIFIERS = {
    "implicitRules": "this server knows no implicit rules; a resource made under other rules is refused",
    "modifierExtension": "this server understands no modifier extension; a resource with one is refused",
}


def _not_understood(body: dict[str, Any]) -> tuple[str, str] | None:
    """The first ``implicitRules`` or ``modifierExtension`` of a posted resource: its path (as the
    validation errors write it, ``participant.0.modifierExtension``) and why it is refused; else None.
    Walked with a stack, not recursion: a body nested as deep as the JSON parser allows stays a 422."""
    stack: list[tuple[tuple[str, ...], Any]] = [((), body)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, dict):
            for element, why in _MODIFIERS.items():
                if node.get(element) is not None:
                    return ".".join((*path, element)), why
            stack.extend(((*path, str(key)), value) for key, value in reversed(node.items()))
        elif isinstance(node, list):
            stack.extend(((*path, str(index)), value) for index, value in reversed(list(enumerate(node))))
    return None
