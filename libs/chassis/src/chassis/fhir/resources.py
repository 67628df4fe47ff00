"""FHIR resources in and out: ``application/fhir+json`` answers and validated request bodies."""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fhir.resources.R4B.resource import Resource
from pydantic import ValidationError

FHIR_JSON = "application/fhir+json"
FHIR_VERSION = "4.3.0"  # R4B: the models of fhir.resources.R4B
BASE_PATH = "/fhir"
MAX_ID = 2**63 - 1
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


def invalid_resource(field: str, message: str) -> RequestValidationError:
    """A 422 about one element of a posted resource (``errors: [{field, message}]``, then an
    OperationOutcome issue with that element as its ``expression``)."""
    return RequestValidationError([{"loc": ("body", field), "msg": message, "type": "value_error"}])


def parse_resource(model: type[ResourceT], body: Any) -> ResourceT:
    """``body`` (parsed JSON) as a ``model`` resource, validated against the FHIR definitions;
    another resource type, or an invalid resource, is a 422 naming what is wrong."""
    expected = model.get_resource_type()
    if not isinstance(body, dict) or body.get("resourceType") != expected:
        raise invalid_resource("resourceType", f"the body must be a FHIR {expected} resource")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise RequestValidationError(
            [
                {"loc": ("body", *error["loc"]), "msg": error["msg"], "type": error["type"]}
                for error in exc.errors()
            ]
        ) from None
