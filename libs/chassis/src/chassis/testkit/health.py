"""A service's health as its orchestrator sees it."""

from __future__ import annotations

from typing import Any


def readiness(client: Any) -> tuple[int, dict[str, Any]]:
    """The status and body of ``GET /health/ready`` of a started app's test client, once its
    liveness (``GET /health/live``) answered ok."""
    assert client.get("/health/live").json() == {"status": "ok"}
    ready = client.get("/health/ready")
    return ready.status_code, ready.json()
