"""The CapabilityStatement: each service's part, and the merged one of the gateway."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fastapi import APIRouter, Request
from fhir.resources.R4B.capabilitystatement import CapabilityStatement

from chassis.fhir.resources import BASE_PATH, FHIR_VERSION, FhirResponse, fhir_base

# When this server's capabilities last changed (CapabilityStatement.date).
CAPABILITIES_DATE = "2026-12-04"


def resource_capability(
    resource_type: str,
    *,
    interactions: Sequence[str] = ("read", "search-type"),
    search_params: Mapping[str, tuple[str, str]] = {},
    profile: str | None = None,
) -> dict[str, Any]:
    """One ``rest.resource`` entry: the interactions served, and ``{name: (type, documentation)}``."""
    entry: dict[str, Any] = {
        "type": resource_type,
        "interaction": [{"code": code} for code in interactions],
        "searchParam": [
            {"name": name, "type": kind, "documentation": doc} for name, (kind, doc) in search_params.items()
        ]
        or None,
    }
    if profile:
        entry["profile"] = profile
    return {key: value for key, value in entry.items() if value is not None}


SECURITY = {
    "description": "The same bearer access tokens as the REST API (POST /api/auth/login/): "
    "send Authorization: Bearer <access>. The same roles and rules apply; only /fhir/metadata is public.",
}


def capability_statement(
    resources: Sequence[Mapping[str, Any]], *, base_url: str, cors: bool = False
) -> CapabilityStatement:
    """The CapabilityStatement of a FHIR server serving ``resources`` at ``base_url``; ``cors``:
    whether browsers on other origins may call it (the gateway's ``CORS_ALLOWED_ORIGINS``)."""
    return CapabilityStatement(
        status="active",
        date=CAPABILITIES_DATE,
        kind="instance",
        publisher="Clinic",
        software={"name": "Clinic"},
        implementation={"description": "Clinic: doctors, their schedules and appointments", "url": base_url},
        fhirVersion=FHIR_VERSION,
        format=["json"],
        rest=[
            {"mode": "server", "security": {"cors": cors, **SECURITY}, "resource": list(resources) or None}
        ],
    )


def merge_capabilities(
    statements: Iterable[Mapping[str, Any]], *, base_url: str, cors: bool = False
) -> CapabilityStatement:
    """One CapabilityStatement out of the services' own: their server resources side by side
    (the first statement describing a resource type wins)."""
    resources: dict[str, Mapping[str, Any]] = {}
    for statement in statements:
        for rest in statement.get("rest") or ():
            if rest.get("mode") != "server":
                continue
            for resource in rest.get("resource") or ():
                resources.setdefault(resource["type"], resource)
    return capability_statement(list(resources.values()), base_url=base_url, cors=cors)


def fhir_router(resources: Sequence[Mapping[str, Any]]) -> APIRouter:
    """A service's FHIR router (prefix ``/fhir``) with its own public ``GET /fhir/metadata``: the
    part of the gateway's CapabilityStatement that the service serves.

    FHIR clients read the CapabilityStatement, not OpenAPI: the routes stay out of the OpenAPI
    documents, whose overview links ``/fhir/metadata`` instead (gateway/docs)."""
    router = APIRouter(prefix=BASE_PATH, include_in_schema=False)

    @router.get("/metadata", response_class=FhirResponse)
    async def metadata(request: Request) -> FhirResponse:
        return FhirResponse(capability_statement(resources, base_url=fhir_base(request)))

    return router
