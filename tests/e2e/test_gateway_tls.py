"""TLS at the gateway, the production default (docs/security.md): the real Traefik with a
certificate from files, in front of stand-in servers. HTTPS only on the public entry point,
HSTS on every answer, plain HTTP redirected permanently to HTTPS."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from chassis.testkit import free_ports
from chassis.testkit.outside import self_signed

from .echo import EchoServer
from .stack import HOST, SERVICES, Gateway


class TlsGateway(Gateway):
    """The gateway serving HTTPS with a certificate the tests trust."""

    def __init__(self, *, cert_file: Path, **kwargs: Any) -> None:
        self.cert_file = cert_file
        super().__init__(**kwargs)

    @property
    def base_url(self) -> str:
        return f"https://{HOST}:{self.gateway_port}"

    def client(self, token: str | None = None, **kwargs: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        verify = ssl.create_default_context(cafile=str(self.cert_file))
        return httpx.Client(base_url=self.base_url, headers=headers, verify=verify, timeout=10, **kwargs)


@pytest.fixture(scope="module")
def tls_gateway(tmp_path_factory) -> Iterator[tuple[TlsGateway, int]]:
    workdir = tmp_path_factory.mktemp("tls-gateway")
    cert_file, key_file = self_signed(workdir)
    servers = {name: EchoServer(name).start() for name in (*SERVICES, "docs")}
    [http_port] = free_ports(1)
    gateway = TlsGateway(
        cert_file=cert_file,
        workdir=workdir,
        backends={service: [servers[service].url] for service in SERVICES},
        env={
            "DOCS_URLS": servers["docs"].url,
            "GATEWAY_TLS_CERT_FILE": str(cert_file),
            "GATEWAY_TLS_KEY_FILE": str(key_file),
            "GATEWAY_HTTP_PORT": str(http_port),
        },
    )
    try:
        with gateway.up():
            yield gateway, http_port
    finally:
        for server in servers.values():
            server.close()


def test_the_public_entry_point_speaks_https_with_hsts(tls_gateway):
    gateway, _ = tls_gateway
    with gateway.client() as client:
        response = client.get("/api/schema/identity/openapi.json")
    assert response.status_code == 200
    assert response.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"


def test_plain_http_reaches_no_service_and_the_http_port_redirects_to_https(tls_gateway):
    gateway, http_port = tls_gateway
    with httpx.Client(timeout=5) as client:
        on_tls_port = client.get(f"http://{HOST}:{gateway.gateway_port}/api/auth/me/")
        # Only TLS routers on this entry point: plain HTTP reaches no service.
        assert on_tls_port.status_code == 404
        redirected = client.get(f"http://{HOST}:{http_port}/api/auth/me/")
    assert redirected.status_code in (301, 308)
    assert redirected.headers["location"].startswith("https://")
    assert redirected.headers["location"].endswith("/api/auth/me/")


def test_old_tls_versions_are_refused(tls_gateway):
    gateway, _ = tls_gateway
    context = ssl.create_default_context(cafile=str(gateway.cert_file))
    context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises((httpx.ConnectError, ssl.SSLError)):
        httpx.get(gateway.url("/api/schema/identity/openapi.json"), verify=context, timeout=5)
