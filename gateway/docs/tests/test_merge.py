"""Merging the services' OpenAPI documents into one (clinic_docs.merge)."""

from __future__ import annotations

from typing import Any

from clinic_docs.merge import BEARER, merge_documents

PROBLEM = {"type": "object", "properties": {"status": {"type": "integer"}, "detail": {"type": "string"}}}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def operation(operation_id: str, schema: str | None = None, *, tag: str, secured: str | None = None) -> dict:
    op: dict[str, Any] = {
        "operationId": operation_id,
        "tags": [tag],
        "summary": operation_id,
        "responses": {"404": {"content": {"application/problem+json": {"schema": ref("Problem")}}}},
    }
    if schema:
        op["responses"]["200"] = {"content": {"application/json": {"schema": ref(schema)}}}
    if secured:
        op["security"] = [{secured: []}]
    return op


def document(title: str, paths: dict, schemas: dict, *, bearer: str | None = "HTTPBearer", tags=()) -> dict:
    components: dict[str, Any] = {"schemas": schemas}
    if bearer:
        components["securitySchemes"] = {bearer: {"type": "http", "scheme": "bearer"}}
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": "1.0.0"},
        "paths": paths,
        "components": components,
        "tags": list(tags),
    }


def two_services() -> dict[str, dict]:
    identity = document(
        "Clinic identity API",
        {
            "/api/auth/me/": {"get": operation("read_me", "User", tag="auth", secured="HTTPBearer")},
            "/internal/verify": {"get": operation("verify", tag="internal")},
            "/health/ready": {"get": operation("ready", tag="health")},
        },
        {
            "Problem": PROBLEM,
            "User": {"type": "object", "properties": {"email": {"type": "string"}}},
            "Person": {"type": "object", "properties": {"user": ref("User")}},
        },
        tags=[{"name": "auth", "description": "Logging in."}],
    )
    booking = document(
        "Clinic booking API",
        {
            "/api/appointments/": {
                "get": operation("list", "Person", tag="appointments", secured="bearerAuth"),
                "post": operation("read_me", "User", tag="appointments", secured="bearerAuth"),
            },
            "/internal/reservations/{id}": {"get": operation("reservation", tag="internal")},
        },
        {
            "Problem": PROBLEM,
            "User": {"type": "object", "properties": {"id": {"type": "integer"}}},
            "Person": {"type": "object", "properties": {"user": ref("User")}},
        },
        bearer="bearerAuth",
    )
    return {"identity": identity, "booking": booking}


def test_every_public_path_of_every_service_is_merged_and_internal_and_health_paths_are_not():
    merged = merge_documents(two_services())
    assert set(merged["paths"]) == {"/api/auth/me/", "/api/appointments/"}
    assert set(merged["paths"]["/api/appointments/"]) == {"get", "post"}
    assert merged["paths"]["/api/auth/me/"]["get"]["x-clinic-service"] == "identity"
    assert merged["paths"]["/api/appointments/"]["get"]["x-clinic-service"] == "booking"


def test_try_it_out_goes_to_the_origin_of_the_page():
    assert merge_documents(two_services())["servers"][0]["url"] == "/"


def test_a_component_defined_identically_by_several_services_is_kept_once():
    schemas = merge_documents(two_services())["components"]["schemas"]
    assert schemas["Problem"] == PROBLEM
    assert "identity.Problem" not in schemas
    assert "booking.Problem" not in schemas


def test_conflicting_components_are_renamed_per_service_and_their_refs_follow():
    merged = merge_documents(two_services())
    schemas = merged["components"]["schemas"]
    assert "User" not in schemas
    assert schemas["identity.User"]["properties"] == {"email": {"type": "string"}}
    assert schemas["booking.User"]["properties"] == {"id": {"type": "integer"}}
    # Person is written identically in both, but refers to a different User in each.
    assert "Person" not in schemas
    assert schemas["identity.Person"]["properties"]["user"] == ref("identity.User")
    assert schemas["booking.Person"]["properties"]["user"] == ref("booking.User")
    me = merged["paths"]["/api/auth/me/"]["get"]
    assert me["responses"]["200"]["content"]["application/json"]["schema"] == ref("identity.User")
    listing = merged["paths"]["/api/appointments/"]["get"]
    assert listing["responses"]["200"]["content"]["application/json"]["schema"] == ref("booking.Person")
    assert listing["responses"]["404"]["content"]["application/problem+json"]["schema"] == ref("Problem")


def test_every_ref_of_the_merged_document_resolves():
    merged = merge_documents(two_services())
    refs: list[str] = []

    def collect(value: Any) -> None:
        if isinstance(value, dict):
            refs.extend(v for k, v in value.items() if k == "$ref")
            for item in value.values():
                collect(item)
        elif isinstance(value, list):
            for item in value:
                collect(item)

    collect(merged)
    assert refs
    for target in refs:
        kind, name = target.removeprefix("#/components/").split("/")
        assert name in merged["components"][kind], target


def test_the_bearer_schemes_of_all_services_become_one():
    merged = merge_documents(two_services())
    assert list(merged["components"]["securitySchemes"]) == [BEARER]
    assert merged["components"]["securitySchemes"][BEARER]["scheme"] == "bearer"
    for item in merged["paths"].values():
        for op in item.values():
            assert op.get("security", [{BEARER: []}]) == [{BEARER: []}]


def test_a_repeated_operation_id_is_prefixed_with_its_service():
    merged = merge_documents(two_services())
    assert merged["paths"]["/api/auth/me/"]["get"]["operationId"] == "read_me"
    assert merged["paths"]["/api/appointments/"]["post"]["operationId"] == "booking_read_me"


def test_tags_appear_once_with_their_service_and_are_grouped_by_service_for_redoc():
    merged = merge_documents(two_services())
    tags = {tag["name"]: tag["description"] for tag in merged["tags"]}
    assert tags == {
        "auth": "Logging in. Served by identity-service.",
        "appointments": "Served by booking-service.",
    }
    assert merged["x-tagGroups"] == [
        {"name": "Clinic identity API", "tags": ["auth"]},
        {"name": "Clinic booking API", "tags": ["appointments"]},
    ]


def test_missing_services_are_listed_and_the_description_is_kept():
    merged = merge_documents(
        {"identity": two_services()["identity"]}, description="Booking is down.", missing=["booking"]
    )
    assert merged["info"]["description"] == "Booking is down."
    assert merged["x-clinic-services"] == ["identity"]
    assert merged["x-clinic-missing-services"] == ["booking"]
    assert set(merged["paths"]) == {"/api/auth/me/"}
    assert set(merged["components"]["schemas"]) == {"Problem", "User", "Person"}


def test_with_no_service_at_all_the_document_is_still_valid_and_empty():
    merged = merge_documents({}, missing=["identity", "doctor", "scheduling", "booking"])
    assert merged["openapi"].startswith("3.")
    assert merged["paths"] == {}
    assert merged["x-clinic-missing-services"] == ["identity", "doctor", "scheduling", "booking"]


def test_the_inputs_are_not_changed():
    services = two_services()
    before = repr(services)
    merge_documents(services)
    assert repr(services) == before
