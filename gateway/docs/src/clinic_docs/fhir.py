"""The gateway's FHIR CapabilityStatement (``GET /fhir/metadata``), merged from the services' own.

Each service that serves FHIR resources describes them in its own ``/fhir/metadata``
(``chassis.fhir.fhir_router``); this app asks them, like it asks for their OpenAPI documents, and
serves one statement with every resource side by side (``chassis.fhir.merge_capabilities``).
A service that does not answer is missing from the statement (its ``description`` says so) for
at most ``DOCS_PARTIAL_CACHE_TTL_SECONDS``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from chassis.fhir import BASE_PATH, merge_capabilities
from clinic_docs.merge import Document

# The services that serve FHIR resources, in the order their resources are listed.
FHIR_SERVICES = ("doctor", "scheduling", "booking")
METADATA_PATH = f"{BASE_PATH}/metadata"


def metadata_path(_service: str) -> str:
    return METADATA_PATH


def is_capability_statement(document: Any) -> bool:
    return isinstance(document, dict) and document.get("resourceType") == "CapabilityStatement"


def merge_statements(documents: Mapping[str, Document], missing: Sequence[str], *, cors: bool) -> Document:
    """One CapabilityStatement of the services that answered; the base URL is set per request,
    ``cors`` says whether the gateway answers browsers of other origins."""
    statement = merge_capabilities(documents.values(), base_url=BASE_PATH, cors=cors).model_dump(mode="json")
    if missing:
        names = ", ".join(f"{name}-service" for name in missing)
        statement["description"] = (
            f"Incomplete right now: {names} did not answer, so its resources are missing. "
            "Ask again in a few seconds."
        )
    return statement


def with_base_url(statement: Document, base_url: str) -> Document:
    """``statement`` saying where the client reached it (the gateway's host)."""
    return {**statement, "implementation": {**statement.get("implementation", {}), "url": base_url}}
