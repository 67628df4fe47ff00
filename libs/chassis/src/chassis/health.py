"""Liveness and readiness endpoints.

``/health/live`` answers while the process serves requests; ``/health/ready``
also checks the service's dependencies (its database, the broker) and reports
each. It answers 503 only when a *required* dependency is down (the database):
with the broker down the service still serves every request (events wait in the
outbox), so it stays ready and reports ``degraded`` — otherwise a broker outage
would take every replica out of the gateway's and Kubernetes' rotation.
Neither endpoint is routed by the gateway. Once the process got SIGTERM (``chassis.shutdown``)
``/health/ready`` answers 503 ``draining`` while it still serves requests, so that the gateway
and Kubernetes take it out of their rotation before it stops listening.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from chassis.shutdown import is_draining

log = logging.getLogger("chassis.health")

Check = Callable[[], None]
# Readiness checks named so report whether a service token can be had (chassis.trust).
CREDENTIAL_CHECK_PREFIX = "credential_for_"


def health_router(checks: Mapping[str, Check], informational: Collection[str] = ("broker",)) -> APIRouter:
    """``/health/live`` and ``/health/ready`` over ``checks``; those named in ``informational``
    (and the service credentials, ``credential_for_*``: without one the internal calls fail
    closed, everything else still works) are reported but do not make the service unready."""
    router = APIRouter(prefix="/health", tags=["health"], include_in_schema=False)

    @router.get("/live")
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/ready")
    async def ready(request: Request) -> JSONResponse:
        if is_draining(request.app):
            return JSONResponse({"status": "draining", "checks": {}}, status_code=503)
        results: dict[str, str] = {}
        for name, check in checks.items():
            try:
                await run_in_threadpool(check)
                results[name] = "ok"
            except Exception as exc:  # any failure means "not ready"; the reason goes to the log only
                log.warning("readiness check %s failed: %s", name, exc)
                results[name] = "unavailable"
        ready = all(
            v == "ok"
            for k, v in results.items()
            if k not in informational and not k.startswith(CREDENTIAL_CHECK_PREFIX)
        )
        status = (
            "unavailable" if not ready else "ok" if all(v == "ok" for v in results.values()) else "degraded"
        )
        return JSONResponse({"status": status, "checks": results}, status_code=200 if ready else 503)

    return router


class BrokerUnreachable(Exception):
    """The broker check's last connection attempt failed (the reason is in the message)."""


def amqp_check(url: str, timeout: float = 2.0, cache_seconds: float = 5.0) -> Check:
    """A readiness check that opens and closes one connection to the broker.

    Within ``timeout`` in all (pika's own handshake limit is 15 s: a broker that accepts the
    connection but stalls would keep ``/health/ready`` past the gateway's 3 s health-check limit),
    and at most once every ``cache_seconds``: the gateway and the orchestrator each check every
    few seconds per replica, and an AMQP handshake per check is real work for a busy broker.
    """
    import pika

    lock = threading.Lock()
    last: dict[str, Any] = {"at": float("-inf"), "error": None}

    def check() -> None:
        with lock:
            if time.monotonic() - last["at"] >= cache_seconds:
                params = pika.URLParameters(url)
                params.socket_timeout = timeout
                params.stack_timeout = timeout
                params.blocked_connection_timeout = timeout
                params.connection_attempts = 1
                try:
                    pika.BlockingConnection(params).close()
                    last["error"] = None
                except Exception as exc:
                    last["error"] = f"{type(exc).__name__}: {exc}"
                last["at"] = time.monotonic()
            if last["error"] is not None:
                raise BrokerUnreachable(last["error"])

    return check
