"""The gateway's own errors as problem+json (``GET /problems/{status}``).

Traefik answers some requests itself, in plain text: ``429`` from the rate limit on login,
register and refresh, ``502`` when a service cannot be reached, ``504`` when it does not answer
in time, ``503`` when no server of a service is healthy, and ``500`` when ForwardAuth cannot
reach identity. The gateway (``gateway/dynamic/routes.yml``) asks this app for the body of
those instead, and Traefik sends it with the original status: every error a client sees is
then ``application/problem+json`` as ``spec/API.md`` says.

- ``429``, ``502``, ``504``: the ``gateway-problems`` errors middleware of every router.
- ``503`` ``service_unavailable``: no healthy server behind a path; the service's failover
  sends the request to the gateway's internal ``unavailable`` router, which asks for
  ``/problems/503`` (a service's own 503s, with their own codes, reach clients unchanged).
- ``503`` ``auth_unavailable`` (``?cause=auth``): the token could not be checked (identity
  down, too slow, or answering 5xx); the internal ``verify`` router turns that into this page,
  which ForwardAuth then returns to the client instead of forwarding the request.
- ``404``: a path under ``/api/`` that no router matches, sent here by the ``api-not-found``
  router, its path replaced by ``/problems/404`` (whatever the method).

Not routed publicly otherwise: Traefik calls the docs service directly.

The errors middleware drops the headers of the response it replaces, so a ``429`` gets its
``Retry-After`` here: the rate limit's refill time of one request, ``period / average`` (the
gateway passes both, as Traefik reads them), rounded up to whole seconds. A ``503`` says
``Retry-After: 2``: the gateway's health checks take an unhealthy server out of (and a
recovered one back into) the rotation within seconds.
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
    503: (
        "service_unavailable",
        "The service behind this path is unavailable right now; try again after Retry-After seconds.",
    ),
    504: ("service_timeout", "The service behind this path did not answer in time; try again shortly."),
}

# Go's time.ParseDuration units, as Traefik reads the rate limit's period.
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
DEFAULT_RETRY_AFTER = 1
UNAVAILABLE_RETRY_AFTER = 2
# /problems/503?cause=auth: the token check could not be made, so the request was not carried out.
AUTH_UNAVAILABLE = (
    "auth_unavailable",
    "The access token cannot be checked right now, so the request was not carried out; "
    "try again after Retry-After seconds.",
)


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


def gateway_problem(
    status: int, average: str | None = None, period: str | None = None, cause: str | None = None
) -> JSONResponse:
    """The problem+json body of one of Traefik's own error statuses."""
    if status not in DETAILS:
        raise ProblemException(404, "No such problem page.")
    code, detail = AUTH_UNAVAILABLE if status == 503 and cause == "auth" else DETAILS[status]
    headers = None
    if status == 429:
        headers = {"Retry-After": str(retry_after(average, period))}
    elif status == 503:
        headers = {"Retry-After": str(UNAVAILABLE_RETRY_AFTER)}
    return problem(status, detail, code=code, headers=headers)
