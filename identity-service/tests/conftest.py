"""identity-service test fixtures, on the chassis test kit (``chassis.testkit``): a migrated
database of this run, the app, and ``api``, identity's callers (real accounts that log in:
identity signs its own tokens, so its tests use no ``TokenMinter``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from fastapi.testclient import TestClient
from support import CHEAP_HASHING, SERVICE_SECRETS, Api

from identity.adapters.keys import private_key_pem
from identity.config import Settings
from identity.main import create_app

ALEMBIC_INI = Path(__file__).resolve().parents[1] / "alembic.ini"


@pytest.fixture(scope="session")
def database_url(make_migrated_database) -> str:
    return make_migrated_database(ALEMBIC_INI, "identity")


@pytest.fixture(scope="session")
def private_key_pem_text() -> str:
    """One signing key for every app of the run, so that they accept each other's tokens."""
    return private_key_pem(Ed25519PrivateKey.generate()).decode()


@pytest.fixture(scope="session")
def service_secrets_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The client secrets of the services that may ask for service tokens (one file each)."""
    directory = tmp_path_factory.mktemp("service-secrets")
    for service, secret in SERVICE_SECRETS.items():
        (directory / service).write_text(secret + "\n")
    return directory


@pytest.fixture(scope="session")
def make_settings(
    database_url: str, amqp_url: str, private_key_pem_text: str, service_secrets_dir: Path
) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values = {
            "database_url": database_url,
            "amqp_url": amqp_url,
            "jwt_private_key": private_key_pem_text,
            "service_secrets_dir": str(service_secrets_dir),
            "log_format": "text",
            **CHEAP_HASHING,
            **overrides,
        }
        return Settings(**values)

    return make


@pytest.fixture(scope="session")
def app(make_settings) -> FastAPI:
    return create_app(make_settings())


@pytest.fixture(scope="session")
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as client:
        yield client


@pytest.fixture(scope="session")
def api(client: TestClient, app: FastAPI) -> Api:
    return Api(client, app)
