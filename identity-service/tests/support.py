"""Helpers shared by identity-service tests (importable: ``pythonpath = ["tests"]``)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from identity import services

PASSWORD = "correct horse battery"

# Argon2 at its cheapest: the suite tests behaviour, not hashing cost.
CHEAP_HASHING = {"password_hash_time_cost": 1, "password_hash_memory_cost": 8, "password_hash_parallelism": 1}
CHEAP_HASHING_ENV = {
    "PASSWORD_HASH_TIME_COST": "1",
    "PASSWORD_HASH_MEMORY_COST": "8",
    "PASSWORD_HASH_PARALLELISM": "1",
}


# The client secrets of the test run's services (SERVICE_SECRETS_DIR holds one file each).
SERVICE_SECRETS = {"booking": "booking-secret-of-the-tests", "scheduling": "scheduling-secret-of-the-tests"}


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}@example.com"


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access']}"}


class Api:
    """Short-hands for the calls most tests make first."""

    def __init__(self, client: TestClient, app: FastAPI) -> None:
        self.client = client
        self.app = app

    def register(self, **fields: Any) -> dict[str, Any]:
        body = {"email": unique_email(), "password": PASSWORD, "full_name": "Test User", **fields}
        response = self.client.post("/api/auth/register/", json=body)
        assert response.status_code == 201, response.text
        return response.json()

    def login(self, email: str, password: str = PASSWORD) -> dict[str, Any]:
        response = self.client.post("/api/auth/login/", json={"email": email, "password": password})
        assert response.status_code == 200, response.text
        return response.json()

    def signed_in(self, **fields: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """A new user (patient unless ``role`` says otherwise) and their tokens."""
        user = self.register(**fields)
        return user, self.login(user["email"])

    def admin(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """A new admin and their tokens."""
        parts = self.app.state.components
        email = unique_email("admin")
        account = services.create_admin(
            parts.db, parts.passwords, email=email, password=PASSWORD, full_name="Admin"
        )
        return {"id": account.user.id, "email": email}, self.login(email)

    def verify(self, tokens: dict[str, Any]) -> Any:
        return self.client.get("/internal/verify", headers=bearer(tokens))


def assert_problem(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    """``response`` is an RFC 9457 problem of ``status`` (and ``code``); its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    assert body["title"] and body["detail"]
    if code is not None:
        assert body["code"] == code
    return body
