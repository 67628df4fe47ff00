"""One OpenAPI document out of the services' own.

Each service documents its public paths (``/api/schema/<name>/openapi.json``); the merged
document puts all of them side by side so that Redoc (one document per page) and Swagger UI's
"All services" entry show the whole API:

- ``paths``: every service's paths; ``/internal/...`` and ``/health/...`` never appear. Each
  operation is marked with ``x-clinic-service``; a duplicated ``operationId`` is prefixed with
  its service.
- ``components``: a name defined identically by several services (``Problem``) is kept once;
  a name the services define differently is renamed ``<service>.<Name>`` in every service
  that defines it, and the ``$ref``s of that service are rewritten to match. Renaming can make
  two once-identical schemas differ (they refer to renamed ones), so the plan is repeated
  until nothing changes.
- ``securitySchemes``: every HTTP bearer scheme becomes the one ``HTTPBearer`` scheme.
- ``tags``: each tag once, noting the service(s) that serve it; ``x-tagGroups`` (Redoc)
  groups them by service.
- ``servers: [{"url": "/"}]``: "Try it out" goes to the origin of the page, the gateway.

Pure functions of dicts: no I/O here.
"""

from __future__ import annotations

import copy
import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

BEARER = "HTTPBearer"
BEARER_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "bearerFormat": "JWT",
    "description": "The `access` token of `POST /api/auth/login/` (or of a token refresh). "
    "Paste the token alone: the `Bearer ` prefix is added for you.",
}
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
HIDDEN_PREFIXES = ("/internal", "/health")
COMPONENTS_REF = "#/components/"
OPENAPI_VERSION = "3.1.0"

Document = dict[str, Any]
# (service, component kind, name) -> the name in the merged document
Renames = dict[tuple[str, str, str], str]


def merge_documents(
    documents: Mapping[str, Document],
    *,
    title: str = "Clinic API",
    version: str = "1.0.0",
    description: str = "",
    missing: Sequence[str] = (),
) -> Document:
    """The merged document of ``documents`` (service name -> its OpenAPI document, in order).

    ``missing`` names the services whose documents could not be had; they are listed in
    ``x-clinic-missing-services`` (the caller says so in ``description`` too).
    """
    renames = plan_component_names(documents)
    merged: Document = {
        "openapi": _openapi_version(documents),
        "info": {"title": title, "version": version, "description": description},
        "servers": [{"url": "/", "description": "The gateway (this page's origin)"}],
        "paths": {},
        "components": {},
    }
    bearer_names: dict[str, set[str]] = {}
    for service, document in documents.items():
        bearer_names[service] = _bearer_scheme_names(document)
        _merge_components(merged["components"], service, document, renames, bearer_names[service])
    operation_ids: set[str] = set()
    tag_services: dict[str, list[str]] = defaultdict(list)
    for service, document in documents.items():
        for path, item in (document.get("paths") or {}).items():
            if _hidden(path):
                continue
            item = _rewrite_refs(copy.deepcopy(item), service, renames)
            target = merged["paths"].setdefault(path, {})
            for key, value in item.items():
                if key not in HTTP_METHODS:
                    target.setdefault(key, value)
                    continue
                if key in target:  # the same operation in two services: the first one wins
                    continue
                operation = _adopt_operation(value, service, bearer_names[service], operation_ids)
                for tag in operation.get("tags") or ():
                    if service not in tag_services[tag]:
                        tag_services[tag].append(service)
                target[key] = operation
    merged["tags"], merged["x-tagGroups"] = _tags(documents, tag_services)
    if any(bearer_names.values()):
        merged["components"].setdefault("securitySchemes", {})[BEARER] = dict(BEARER_SCHEME)
    if not merged["components"]:
        del merged["components"]
    merged["x-clinic-services"] = list(documents)
    merged["x-clinic-missing-services"] = list(missing)
    return merged


def plan_component_names(documents: Mapping[str, Document]) -> Renames:
    """Where each service's components land in the merged document (see the module doc)."""
    conflicted: set[tuple[str, str]] = set()
    while True:
        renames = _renames(documents, conflicted)
        versions: dict[tuple[str, str], set[str]] = defaultdict(set)
        for service, document in documents.items():
            for kind, entries in _components(document):
                for name, value in entries.items():
                    rewritten = _rewrite_refs(copy.deepcopy(value), service, renames)
                    versions[(kind, name)].add(json.dumps(rewritten, sort_keys=True))
        newly = {key for key, found in versions.items() if len(found) > 1} - conflicted
        if not newly:
            return renames
        conflicted |= newly


def _renames(documents: Mapping[str, Document], conflicted: set[tuple[str, str]]) -> Renames:
    return {
        (service, kind, name): f"{service}.{name}" if (kind, name) in conflicted else name
        for service, document in documents.items()
        for kind, entries in _components(document)
        for name in entries
    }


def _components(document: Document) -> list[tuple[str, dict[str, Any]]]:
    """The component kinds of ``document`` that are merged by name (not security schemes)."""
    components = document.get("components") or {}
    return [
        (kind, entries)
        for kind, entries in components.items()
        if kind != "securitySchemes" and isinstance(entries, dict)
    ]


def _merge_components(
    target: dict[str, Any], service: str, document: Document, renames: Renames, bearer: set[str]
) -> None:
    for kind, entries in _components(document):
        merged = target.setdefault(kind, {})
        for name, value in entries.items():
            merged.setdefault(
                renames[(service, kind, name)], _rewrite_refs(copy.deepcopy(value), service, renames)
            )
    schemes = (document.get("components") or {}).get("securitySchemes") or {}
    for name, scheme in schemes.items():
        if name not in bearer:
            target.setdefault("securitySchemes", {}).setdefault(name, copy.deepcopy(scheme))


def _rewrite_refs(value: Any, service: str, renames: Renames) -> Any:
    """``value`` with every ``$ref`` (and discriminator mapping) to a component renamed."""
    if isinstance(value, list):
        return [_rewrite_refs(item, service, renames) for item in value]
    if not isinstance(value, dict):
        return value
    result = {}
    for key, item in value.items():
        if key == "$ref" and isinstance(item, str):
            result[key] = _renamed_ref(item, service, renames)
        elif key == "mapping" and isinstance(item, dict):
            result[key] = {
                k: _renamed_ref(v, service, renames) if isinstance(v, str) else v for k, v in item.items()
            }
        else:
            result[key] = _rewrite_refs(item, service, renames)
    return result


def _renamed_ref(ref: str, service: str, renames: Renames) -> str:
    if not ref.startswith(COMPONENTS_REF):
        return ref
    kind, _, name = ref[len(COMPONENTS_REF) :].partition("/")
    new = renames.get((service, kind, name))
    return ref if new is None else f"{COMPONENTS_REF}{kind}/{new}"


def _bearer_scheme_names(document: Document) -> set[str]:
    schemes = (document.get("components") or {}).get("securitySchemes") or {}
    return {
        name
        for name, scheme in schemes.items()
        if isinstance(scheme, dict)
        and scheme.get("type") == "http"
        and str(scheme.get("scheme", "")).lower() == "bearer"
    }


def _adopt_operation(
    operation: dict[str, Any], service: str, bearer: set[str], operation_ids: set[str]
) -> dict[str, Any]:
    operation = dict(operation)
    if "security" in operation:
        operation["security"] = [
            {BEARER if name in bearer else name: scopes for name, scopes in requirement.items()}
            for requirement in operation["security"]
        ]
    operation_id = operation.get("operationId")
    if operation_id:
        if operation_id in operation_ids:
            operation_id = f"{service}_{operation_id}"
            operation["operationId"] = operation_id
        operation_ids.add(operation_id)
    operation["x-clinic-service"] = service
    return operation


def _tags(
    documents: Mapping[str, Document], tag_services: Mapping[str, list[str]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Each tag once (declared ones first, in service order), and Redoc's groups by service."""
    declared: dict[str, dict[str, Any]] = {}
    owner: dict[str, str] = {}
    for service, document in documents.items():
        for tag in document.get("tags") or ():
            if isinstance(tag, dict) and tag.get("name") and tag["name"] not in declared:
                declared[tag["name"]] = dict(tag)
                owner[tag["name"]] = service
    for tag, services in tag_services.items():
        if tag not in declared:
            declared[tag] = {"name": tag}
            owner[tag] = services[0]
    tags = []
    for name, tag in declared.items():
        services = tag_services.get(name) or [owner[name]]
        served_by = " and ".join(f"{service}-service" for service in services)
        text = (tag.get("description") or "").strip()
        tag["description"] = f"{text} Served by {served_by}." if text else f"Served by {served_by}."
        tags.append(tag)
    groups = []
    for service, document in documents.items():
        names = [tag["name"] for tag in tags if owner[tag["name"]] == service]
        if names:
            title = (document.get("info") or {}).get("title") or f"{service} service"
            groups.append({"name": title, "tags": names})
    return tags, groups


def _hidden(path: str) -> bool:
    return any(path == prefix or path.startswith(prefix + "/") for prefix in HIDDEN_PREFIXES)


def _openapi_version(documents: Mapping[str, Document]) -> str:
    versions = {str(document.get("openapi")) for document in documents.values() if document.get("openapi")}
    return max(versions) if versions else OPENAPI_VERSION
