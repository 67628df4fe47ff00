"""Where a test run's servers come from, and the id that names what the run creates on them.

Servers come from ``TEST_DATABASE_URL`` / ``TEST_AMQP_URL`` when set (a server URL; its
database or vhost part is ignored), else from testcontainers when a Docker engine answers.
With neither, the tests that need them are skipped on a developer's machine and **fail**
under ``CI=true``: a missing server must never pass silently.
"""

from __future__ import annotations

import os
import uuid

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def unavailable(what: str) -> None:
    message = f"no {what}: set TEST_{what.split()[0].upper()}_URL or run a Docker engine for testcontainers"
    if in_ci():
        pytest.fail(f"{message} (CI=true: a missing server is a failure, not a skip)", pytrace=False)
    pytest.skip(message)


def docker_available() -> bool:
    try:
        import docker  # type: ignore[import-untyped]

        docker.from_env().ping()
        return True
    except Exception:
        return False


def current_run_id(config: pytest.Config) -> str:
    """One id per test run (and per xdist worker), used to name its databases and vhost."""
    base = os.environ.get("CLINIC_TEST_RUN_ID") or getattr(config, "_clinic_run_id", None)
    if base is None:
        base = uuid.uuid4().hex[:10]
        config._clinic_run_id = base  # type: ignore[attr-defined]
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    return f"{base}{worker}"


@pytest.fixture(scope="session")
def run_id(request: pytest.FixtureRequest) -> str:
    return current_run_id(request.config)
