"""Small helpers for talking to the API the way a client does (spec/API.md)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from .stack import ProcessGroup

PASSWORD = "Blue-Otter-42"
PROBLEM_JSON = "application/problem+json"
USER_FIELDS = {"id", "email", "full_name", "phone", "role", "is_active", "date_joined"}
TOKEN_FIELDS = {"access", "refresh", "token_type", "expires_in"}


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}@clinic.example.com"


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """The RFC 9457 body of ``response``, which must have ``status``."""
    assert response.status_code == status, f"expected {status}, got {response.status_code}: {response.text}"
    assert response.headers["content-type"].startswith(PROBLEM_JSON), response.headers
    body = response.json()
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]
    return body


@dataclass
class User:
    id: int
    email: str
    password: str
    role: str
    access: str
    refresh: str


def register(
    client: httpx.Client,
    *,
    role: str | None = "patient",
    email: str | None = None,
    password: str = PASSWORD,
    full_name: str = "Pat Patient",
    **fields: Any,
) -> dict[str, Any]:
    """Register an account (201) and return the user."""
    body = {
        "email": email or unique_email(role or "user"),
        "password": password,
        "full_name": full_name,
        **fields,
    }
    if role is not None:
        body["role"] = role
    response = client.post("/api/auth/register/", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def login(client: httpx.Client, email: str, password: str) -> dict[str, Any]:
    """Log in (200) and return the tokens."""
    response = client.post("/api/auth/login/", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    return response.json()


def new_user(stack: ProcessGroup, role: str = "patient", **fields: Any) -> User:
    """A freshly registered, logged-in user (each from a client address of its own)."""
    with stack.client() as client:
        user = register(client, role=role, **fields)
        tokens = login(client, user["email"], PASSWORD)
    return User(user["id"], user["email"], PASSWORD, user["role"], tokens["access"], tokens["refresh"])
