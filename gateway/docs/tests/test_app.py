"""The docs app over HTTP, in front of stand-in services that serve OpenAPI documents."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fastapi.testclient import TestClient
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.operationoutcome import OperationOutcome

from chassis.fhir import FHIR_JSON, capability_statement, resource_capability
from chassis.testkit import free_port
from clinic_docs.config import SERVICES, Settings
from clinic_docs.main import create_app

MERGED = "/api/schema/openapi.json"


def service_document(service: str) -> dict:
    return {
        "openapi": "3.1.0",
        "info": {"title": f"Clinic {service} API", "version": "1.0.0"},
        "paths": {f"/api/{service}/": {"get": {"operationId": f"list_{service}", "tags": [service]}}},
        "components": {"securitySchemes": {"HTTPBearer": {"type": "http", "scheme": "bearer"}}},
    }


FHIR_RESOURCES = {"doctor": "Practitioner", "scheduling": "Slot", "booking": "Appointment"}


def capability_part(service: str) -> dict:
    """What a service's own /fhir/metadata says: its resources only."""
    statement = capability_statement([resource_capability(FHIR_RESOURCES[service])], base_url="http://x/fhir")
    return statement.model_dump(mode="json")


class StandIn:
    """A service that answers its OpenAPI document, and counts how often it was asked."""

    def __init__(self, service: str, port: int = 0) -> None:
        self.service = service
        self.requests: list[str] = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                stand_in.requests.append(self.path)
                if self.path == f"/api/schema/{service}/openapi.json":
                    document = service_document(service)
                elif self.path == "/fhir/metadata" and service in FHIR_RESOURCES:
                    document = capability_part(service)
                else:
                    self.send_error(404)
                    return
                body = json.dumps(document).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def unused_url() -> str:
    """A local address where nothing listens (connection refused)."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture
def stand_ins() -> Iterator[dict[str, StandIn]]:
    servers = {service: StandIn(service) for service in SERVICES}
    yield servers
    for server in servers.values():
        server.close()


def docs_client(urls: dict[str, str], **settings: float | str) -> TestClient:
    # Both variables, so that none of the developer's own settings leaks in.
    env = {f"{service.upper()}_URL": url.split(",")[0] for service, url in urls.items()}
    env |= {f"{service.upper()}_URLS": url for service, url in urls.items()}
    return TestClient(create_app(Settings(LOG_FORMAT="text", **env, **settings)))


def test_the_merged_document_has_the_paths_of_every_service(stand_ins):
    with docs_client({s: server.url for s, server in stand_ins.items()}) as client:
        response = client.get(MERGED)
    assert response.status_code == 200
    document = response.json()
    assert set(document["paths"]) == {f"/api/{service}/" for service in SERVICES}
    assert document["x-clinic-missing-services"] == []
    assert "Incomplete" not in document["info"]["description"]
    assert document["servers"] == [{"url": "/", "description": "The gateway (this page's origin)"}]


def test_a_service_that_is_down_is_left_out_and_named_in_the_description(stand_ins):
    urls = {s: server.url for s, server in stand_ins.items()} | {"booking": unused_url()}
    with docs_client(urls) as client:
        document = client.get(MERGED).json()
    assert "/api/booking/" not in document["paths"]
    assert "/api/identity/" in document["paths"]
    assert document["x-clinic-missing-services"] == ["booking"]
    assert "**Incomplete right now:** booking-service did not answer" in document["info"]["description"]


def test_the_document_of_a_service_comes_from_the_first_replica_that_answers(stand_ins):
    urls = {s: server.url for s, server in stand_ins.items()}
    urls["doctor"] = f"{unused_url()},{stand_ins['doctor'].url}"
    with docs_client(urls) as client:
        document = client.get(MERGED).json()
    assert "/api/doctor/" in document["paths"]
    assert document["x-clinic-missing-services"] == []


def test_the_merged_document_is_kept_for_the_cache_ttl(stand_ins):
    with docs_client(
        {s: server.url for s, server in stand_ins.items()}, DOCS_CACHE_TTL_SECONDS=600
    ) as client:
        for _ in range(3):
            assert client.get(MERGED).status_code == 200
    assert len(stand_ins["identity"].requests) == 1


def test_an_incomplete_document_heals_once_the_service_is_back(stand_ins):
    down = unused_url()
    urls = {s: server.url for s, server in stand_ins.items()} | {"scheduling": down}
    settings = {"DOCS_CACHE_TTL_SECONDS": 600, "DOCS_PARTIAL_CACHE_TTL_SECONDS": 0}
    with docs_client(urls, **settings) as client:
        assert client.get(MERGED).json()["x-clinic-missing-services"] == ["scheduling"]
        back = StandIn("scheduling", port=int(down.rsplit(":", 1)[1]))
        try:
            document = client.get(MERGED).json()
        finally:
            back.close()
    assert document["x-clinic-missing-services"] == []
    assert "/api/scheduling/" in document["paths"]


@pytest.mark.parametrize("page", ["/api/schema/swagger-ui/", "/api/schema/redoc/", "/api/schema/swagger-ui"])
def test_the_pages_load_only_files_the_app_serves_itself(stand_ins, page):
    with docs_client({s: server.url for s, server in stand_ins.items()}) as client:
        response = client.get(page)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        assert "default-src 'self'" in response.headers["content-security-policy"]
        assert not re.search(r"https?://", response.text)
        loaded = re.findall(r'(?:src|href)="([^"]+)"', response.text)
        assets = [url for url in loaded if url.startswith("/api/schema/assets/")]
        assert assets
        for url in assets:
            asset = client.get(url)
            assert asset.status_code == 200, url
            assert asset.headers["content-type"].split(";")[0] in {"text/javascript", "text/css"}


def test_swagger_ui_offers_all_services_first_then_each_service_and_keeps_the_authorization(stand_ins):
    with docs_client({s: server.url for s, server in stand_ins.items()}) as client:
        text = client.get("/api/schema/swagger-ui/").text
    config = json.loads(
        re.search(r'<script id="swagger-config" type="application/json">(.*?)</script>', text)[1]
    )
    assert config["urls"][0] == {"name": "All services", "url": MERGED}
    assert [u["url"] for u in config["urls"][1:]] == [f"/api/schema/{s}/openapi.json" for s in SERVICES]
    assert config["urls.primaryName"] == "All services"
    assert config["persistAuthorization"] is True
    assert "swagger-ui-standalone-preset.js" in text


def test_an_unknown_asset_is_a_404_problem(stand_ins):
    with docs_client({s: server.url for s, server in stand_ins.items()}) as client:
        response = client.get("/api/schema/assets/config.py")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


def test_the_app_is_live_and_ready_with_every_service_down():
    with docs_client(dict.fromkeys(SERVICES, unused_url())) as client:
        assert client.get("/health/live").status_code == 200
        assert client.get("/health/ready").status_code == 200
        document = client.get(MERGED).json()
    assert document["paths"] == {}
    assert document["x-clinic-missing-services"] == list(SERVICES)


def test_an_unchanged_asset_is_revalidated_with_its_etag(stand_ins):
    with docs_client({s: server.url for s, server in stand_ins.items()}) as client:
        first = client.get("/api/schema/assets/swagger-ui.css")
        again = client.get(
            "/api/schema/assets/swagger-ui.css", headers={"If-None-Match": first.headers["etag"]}
        )
    assert first.status_code == 200
    assert again.status_code == 304
    assert again.content == b""


def test_redoc_is_served_without_its_cdn_logo(stand_ins):
    with docs_client({s: server.url for s, server in stand_ins.items()}) as client:
        bundle = client.get("/api/schema/assets/redoc.standalone.js")
    assert bundle.status_code == 200
    assert b"cdn.redoc.ly" not in bundle.content
    assert b"Redoc" in bundle.content


def test_fhir_metadata_is_one_capability_statement_of_every_fhir_service(stand_ins):
    with docs_client({s: server.url for s, server in stand_ins.items()}) as client:
        response = client.get("/fhir/metadata")
    assert response.status_code == 200
    assert response.headers["content-type"] == FHIR_JSON
    statement = CapabilityStatement.model_validate_json(response.content)
    assert statement.fhirVersion == "4.3.0"
    assert statement.implementation.url == "http://testserver/fhir"
    assert [r.type for r in statement.rest[0].resource] == ["Practitioner", "Slot", "Appointment"]
    assert statement.description is None
    assert statement.rest[0].security.cors is False  # no CORS_ALLOWED_ORIGINS: same origin only
    assert "/fhir/metadata" not in stand_ins["identity"].requests


def test_fhir_metadata_says_cors_when_the_gateway_allows_other_origins(stand_ins):
    urls = {s: server.url for s, server in stand_ins.items()}
    with docs_client(urls, CORS_ALLOWED_ORIGINS="https://app.clinic.example") as client:
        statement = CapabilityStatement.model_validate_json(client.get("/fhir/metadata").content)
    assert statement.rest[0].security.cors is True


def test_fhir_metadata_without_a_service_says_it_is_incomplete(stand_ins):
    urls = {s: server.url for s, server in stand_ins.items()} | {"scheduling": unused_url()}
    with docs_client(urls) as client:
        statement = CapabilityStatement.model_validate_json(client.get("/fhir/metadata").content)
    assert [r.type for r in statement.rest[0].resource] == ["Practitioner", "Appointment"]
    assert "scheduling-service did not answer" in statement.description


def test_the_gateways_errors_of_fhir_requests_are_operation_outcomes(stand_ins):
    with docs_client({s: server.url for s, server in stand_ins.items()}) as client:
        bad_gateway = client.get("/fhir/problems/502")
        not_found = client.post("/problems/404", headers={"X-Replaced-Path": "/fhir/Patient/1"})
        plain = client.get("/problems/404")
    assert (bad_gateway.status_code, bad_gateway.headers["content-type"]) == (502, FHIR_JSON)
    assert OperationOutcome.model_validate_json(bad_gateway.content).issue[0].code == "transient"
    assert OperationOutcome.model_validate_json(not_found.content).issue[0].code == "not-found"
    assert plain.headers["content-type"] == "application/problem+json"
