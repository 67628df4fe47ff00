"""Liveness and readiness endpoints.

``/health/live`` answers while the process serves requests; ``/health/ready``
also checks the service's dependencies (its database, the broker) and answers
503 with the failing checks when one is down. Neither is routed by the gateway.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

log = logging.getLogger("chassis.health")

Check = Callable[[], None]


def health_router(checks: Mapping[str, Check]) -> APIRouter:
    router = APIRouter(prefix="/health", tags=["health"], include_in_schema=False)

    @router.get("/live")
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/ready")
    async def ready() -> JSONResponse:
        results: dict[str, str] = {}
        for name, check in checks.items():
            try:
                await run_in_threadpool(check)
                results[name] = "ok"
            except Exception as exc:  # any failure means "not ready"; the reason goes to the log only
                log.warning("readiness check %s failed: %s", name, exc)
                results[name] = "unavailable"
        healthy = all(v == "ok" for v in results.values())
        return JSONResponse(
            {"status": "ok" if healthy else "unavailable", "checks": results},
            status_code=200 if healthy else 503,
        )

    return router


def amqp_check(url: str, timeout: float = 2.0) -> Check:
    """A readiness check that opens and closes one connection to the broker."""
    import pika

    def check() -> None:
        params = pika.URLParameters(url)
        params.socket_timeout = timeout
        params.blocked_connection_timeout = timeout
        params.connection_attempts = 1
        pika.BlockingConnection(params).close()

    return check
