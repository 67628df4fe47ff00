"""The gateway's own errors as problem+json (``GET /problems/{status}``).

Traefik answers some requests itself, in plain text: ``429`` from the rate limit on login,
register and refresh, ``502`` when a service cannot be reached, ``504`` when it does not answer
in time. The ``gateway-problems`` errors middleware (``gateway/dynamic/routes.yml``) asks this
app for the body of those instead, and Traefik sends it with the original status: every error
a client sees is then ``application/problem+json`` as ``spec/API.md`` says. A path under
``/api/`` that no router matches is sent here by the ``api-not-found`` router, its path
replaced by ``/problems/404`` (whatever the method). Not routed publicly otherwise: Traefik
calls the docs service directly.

The errors middleware drops the headers of the response it replaces, so a ``429`` gets its
``Retry-After`` here: the rate limit's refill time of one request, ``period / average`` (the
gateway passes both, as Traefik reads them), rounded up to whole seconds.
"""

from __future__ import annotations

import math
import re

from fastapi.responses import JSONResponse

from chassis.errors import ProblemException, problem

# Only the statuses Traefik itself produces; the services' own errors reach clients unchanged.
# 404: a path under /api/ that no router matches (the gateway's not-found router).
DETAILS = {
    404: ("not_found", "There is no endpoint at this path; spec/API.md lists them."),
    429: ("rate_limited", "Too many attempts from this address; try again after Retry-After seconds."),
    502: ("service_unreachable", "The service behind this path cannot be reached now; try again shortly."),
    504: ("service_timeout", "The service behind this path did not answer in time; try again shortly."),
}

# Go's time.ParseDuration units, as Traefik reads the rate limit's period.
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
DEFAULT_RETRY_AFTER = 1


def go_duration_seconds(text: str) -> float | None:
    """Seconds in a Go duration string (``1m``, ``1h30m``, ``500ms``); None if it is not one."""
    text = text.strip()
    if not text or _PART.sub("", text):
        return None
    return sum(float(number) * _UNITS[unit] for number, unit in _PART.findall(text))


def retry_after(average: str | None, period: str | None) -> int:
    """Whole seconds until the rate limit has room for one more request (at least 1)."""
    try:
        per_period = float(average) if average else 0.0
    except ValueError:
        per_period = 0.0
    seconds = go_duration_seconds(period or "1s")
    if not per_period > 0 or seconds is None or seconds <= 0:
        return DEFAULT_RETRY_AFTER
    return max(1, math.ceil(seconds / per_period))


def gateway_problem(status: int, average: str | None = None, period: str | None = None) -> JSONResponse:
    """The problem+json body of one of Traefik's own error statuses."""
    if status not in DETAILS:
        raise ProblemException(404, "No such problem page.")
    code, detail = DETAILS[status]
    headers = {"Retry-After": str(retry_after(average, period))} if status == 429 else None
    return problem(status, detail, code=code, headers=headers)
