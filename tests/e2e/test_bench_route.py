"""The benchmark's ceiling route (gateway/dynamic/bench.yml): only with GATEWAY_BENCH_ROUTES set,
and then authenticated like every protected route, ending at identity's trivial handler."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from .echo import EchoServer, backends_of, echo_servers
from .stack import Gateway

TOKEN = "patient-token"
CEILING = "/api/bench/ceiling/"


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, EchoServer]]:
    # The docs app's stand-in answers the problem pages (an unknown /api/ path: 404).
    with echo_servers({TOKEN: ("42", "patient")}) as servers:
        yield servers


def start_gateway(servers: dict[str, EchoServer], workdir, env: dict[str, str]) -> Gateway:
    return Gateway(
        workdir=workdir, backends=backends_of(servers), env={"DOCS_URLS": servers["docs"].url, **env}
    ).up()


def test_the_ceiling_route_is_authenticated_and_ends_at_identitys_liveness(servers, tmp_path):
    with start_gateway(servers, tmp_path, {"GATEWAY_BENCH_ROUTES": "1"}) as gateway:
        marker = uuid.uuid4().hex
        with gateway.client(TOKEN) as client:
            response = client.get(f"{CEILING}?probe={marker}")
        assert response.status_code == 200
        assert [r.path.split("?")[0] for r in servers["identity"].seen(marker)] == [
            "/internal/verify",
            "/health/live",
        ]

        marker = uuid.uuid4().hex
        with gateway.client() as client:
            assert client.get(f"{CEILING}?probe={marker}").status_code == 401
        assert [r.path.split("?")[0] for r in servers["identity"].seen(marker)] == ["/internal/verify"]


@pytest.mark.parametrize("setting", [{}, {"GATEWAY_BENCH_ROUTES": "0"}, {"GATEWAY_BENCH_ROUTES": "false"}])
def test_without_the_setting_there_is_no_ceiling_route(servers, tmp_path, setting):
    with start_gateway(servers, tmp_path, setting) as gateway, gateway.client(TOKEN) as client:
        marker = uuid.uuid4().hex
        assert client.get(f"{CEILING}?probe={marker}").status_code == 404
    # The not-found page (from the docs app), never identity.
    assert servers["identity"].seen(marker) == []
    assert [r.path.split("?")[0] for r in servers["docs"].seen(marker)] == ["/problems/404"]
