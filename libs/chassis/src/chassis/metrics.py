"""Prometheus metrics: every service's HTTP traffic and the domain's ``clinic_*`` metrics.

Each service process serves ``/metrics`` on a port of its own (``METRICS_PORT``, on
``METRICS_HOST``), never on its API port, so the gateway cannot route to it; each worker
process of one service (``WEB_CONCURRENCY``) takes the next free port. Unset, the process
serves none (test apps, one-off commands).

- HTTP traffic, by route template, is measured by ``HttpMetrics`` (``instrument``), an ASGI
  middleware: ``http_requests_total{handler,method,status}`` (status grouped as 2xx, 4xx,
  5xx) and ``http_request_duration_seconds{handler,method}``, the names and labels of
  prometheus-fastapi-instrumentator, which it replaced on every request's path (``make bench``
  rows 1-5: that library matched every route a second time and built a request, a response
  and an info object per request).
- Domain counters and histograms are module-level objects made once per process with
  ``counter``/``gauge``/``histogram`` (the same name twice returns the same metric, so
  test sessions that build many apps in one process do not clash), incremented where the
  thing happens: an ``inc()`` is a lock and an addition, nothing more.
- Gauges that need a query (the outbox's depth, the oldest event's age) are computed when
  Prometheus scrapes, by one collector per process that each running app adds its source to
  (a ``ScrapedGauges``, e.g. ``chassis.messaging.metrics.OutboxBacklog``): no request pays for them.

A service adds its own metrics in its ``adapters/metrics.py`` with these helpers; names are
``clinic_<what>_<unit>`` (``_total`` for counters, ``_seconds`` for durations). The
notification service's webhook and mail deliveries fit as
``clinic_notification_deliveries_total{channel,outcome}``,
``clinic_notification_delivery_lag_seconds{channel}`` (a histogram with ``LAG_BUCKETS``: from
the event's ``occurred_at`` to the delivery) and, computed at scrape time like the outbox's,
``clinic_notification_pending{channel}``; its panels and alert rules then join those of
deploy/observability/ (docs/deploy.md, "Observability").
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from fastapi import FastAPI
from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics import MetricWrapperBase
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("chassis.metrics")

# Request durations of an API whose answers take milliseconds, up to a client's patience.
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Lags of asynchronous work (an event from its producer to its consumer): seconds to hours.
LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)

_M = TypeVar("_M", bound=MetricWrapperBase)
_made: dict[str, MetricWrapperBase] = {}
_made_lock = threading.Lock()


def _once(kind: type[_M], name: str, documentation: str, labelnames: Sequence[str], **kwargs: Any) -> _M:
    with _made_lock:
        metric = _made.get(name)
        if metric is None:
            metric = kind(name, documentation, labelnames=tuple(labelnames), **kwargs)
            _made[name] = metric
        elif not isinstance(metric, kind) or tuple(metric._labelnames) != tuple(labelnames):
            raise ValueError(f"metric {name} already exists with another type or other labels")
        return metric  # type: ignore[return-value]


def counter(name: str, documentation: str, labelnames: Sequence[str] = ()) -> Counter:
    """The process's counter ``name`` (made on first use). Prometheus adds ``_total`` if missing."""
    return _once(Counter, name, documentation, labelnames)


def gauge(name: str, documentation: str, labelnames: Sequence[str] = ()) -> Gauge:
    return _once(Gauge, name, documentation, labelnames)


def histogram(
    name: str, documentation: str, labelnames: Sequence[str] = (), buckets: Sequence[float] = HTTP_BUCKETS
) -> Histogram:
    return _once(Histogram, name, documentation, labelnames, buckets=tuple(buckets))


class ScrapedGauges:
    """Gauges read when Prometheus scrapes (never on a request's or a worker's path).

    One collector per process, registered on first use; each running app adds its source
    (``watching(label, source)``, e.g. its service's name and database) for as long as it runs
    (a test process runs several apps at once). A subclass names its gauge families
    (``families()``, fresh ones each call) and fills them from one source (``read``); a source that
    fails (its database is down) is left out of that scrape rather than failing it.
    """

    def __init__(self) -> None:
        self._sources: dict[int, tuple[str, Any]] = {}
        self._lock = threading.Lock()
        self._registered = False

    def families(self) -> Sequence[GaugeMetricFamily]:
        raise NotImplementedError

    def read(self, label: str, source: Any, families: Sequence[GaugeMetricFamily]) -> None:
        raise NotImplementedError

    @contextmanager
    def watching(self, label: str, source: Any) -> Iterator[None]:
        key = id(source)
        with self._lock:
            register, self._registered = not self._registered, True
            self._sources[key] = (label, source)
        if register:
            REGISTRY.register(self)  # asks describe(), not collect(): no query at registration
        try:
            yield
        finally:
            with self._lock:
                self._sources.pop(key, None)

    def describe(self) -> Iterator[Any]:
        yield from self.families()

    def collect(self) -> Iterator[Any]:
        families = self.families()
        with self._lock:
            sources = list(self._sources.values())
        for label, source in sources:
            try:
                self.read(label, source, families)
            except Exception as exc:  # a scrape while the database is down: no sample, not an error page
                log.debug("%s of %s unavailable: %s", type(self).__name__, label, exc)
        yield from families


def instrument(app: FastAPI) -> None:
    """Count and time ``app``'s requests by route template (not by raw path: bounded labels)."""
    app.add_middleware(HttpMetrics)


# Methods outside these count as "other": a client chooses the method, and labels must stay few.
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class HttpMetrics:
    """Pure ASGI middleware: ``http_requests_total`` and ``http_request_duration_seconds``.

    Only the request counter and the duration histogram (request and response sizes nobody
    reads). The route template is the one the app's router chose (``scope["route"]``, the
    route FastAPI ran, mapped once to its full path with the routers' prefixes); a request no
    route took (an unknown path) counts as ``handler="none"``. Health probes are left out (the
    orchestrator calls them every few seconds). Each label set's children are looked up once and
    kept, so a request costs two dictionary reads, an ``inc()`` and an ``observe()``.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._templates: dict[int, str] | None = None
        self._counted: dict[tuple[str, str, str], Any] = {}
        self._timed: dict[tuple[str, str], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/health"):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            self._observe(scope, status, time.perf_counter() - started)

    def _observe(self, scope: Scope, status: int, seconds: float) -> None:
        handler = self._template(scope)
        method = scope["method"] if scope["method"] in HTTP_METHODS else "other"
        group = f"{status // 100}xx"
        counted = self._counted.get((handler, method, group))
        if counted is None:
            counted = self._counted[(handler, method, group)] = HTTP_REQUESTS.labels(handler, method, group)
        timed = self._timed.get((handler, method))
        if timed is None:
            timed = self._timed[(handler, method)] = HTTP_DURATION.labels(handler, method)
        counted.inc()
        timed.observe(seconds)

    def _template(self, scope: Scope) -> str:
        route = scope.get("route")
        if route is None:
            return "none"
        if self._templates is None:
            self._templates = route_templates(scope["app"].routes)
        return self._templates.get(id(route)) or getattr(route, "path", None) or "none"


def route_templates(routes: Iterable[Any]) -> dict[int, str]:
    """Each route the app runs (``scope["route"]``, by identity) and its full path template.

    FastAPI keeps an included router's routes as they were declared (without the prefixes) and
    lists them through ``effective_route_contexts()``, whose ``path`` has every prefix. A route
    included twice under different prefixes has no one template: it keeps its own path.
    """
    templates: dict[int, str] = {}
    ambiguous: set[int] = set()
    for route in routes:
        contexts = getattr(route, "effective_route_contexts", None)
        pairs = (
            [(context.original_route, context.path) for context in contexts()]
            if callable(contexts)
            else [(route, getattr(route, "path", None))]
        )
        for original, path in pairs:
            if not path:
                continue
            key = id(original)
            if templates.setdefault(key, path) != path:
                ambiguous.add(key)
    for key in ambiguous:
        del templates[key]
    return templates


HTTP_REQUESTS = counter(
    "http_requests_total",
    "Total number of requests by method, status and handler.",
    ("handler", "method", "status"),
)
HTTP_DURATION = histogram(
    "http_request_duration_seconds", "Duration of HTTP requests in seconds", ("handler", "method")
)


# With several worker processes per service (WEB_CONCURRENCY), each takes the first free port
# from METRICS_PORT on: worker processes have no index to derive a port from.
PORTS_TRIED = 16


def serve_metrics(host: str, port: int, tries: int = PORTS_TRIED) -> Callable[[], None] | None:
    """Serve the process's registry at ``http://host:<port>/metrics`` in a daemon thread, on the
    first free port from ``port`` on; returns a stop, or None when none was free (the service runs
    on without metrics rather than not at all)."""
    for candidate in range(port, port + tries):
        try:
            server, thread = start_http_server(candidate, addr=host)
        except OSError as exc:
            log.debug("metrics port %s unavailable: %s", candidate, exc)
            continue
        log.info("metrics on http://%s:%s/metrics", host, candidate)
        break
    else:
        log.error("no free metrics port in %s..%s: serving no metrics", port, port + tries - 1)
        return None

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(5)

    return stop


@contextmanager
def metrics_server(app: FastAPI) -> Iterator[None]:
    """The start-up hook of every service app: ``/metrics`` on ``METRICS_PORT`` while the app runs.

    The port and host come from the app's settings (``app.state.settings``: ``metrics_port``,
    ``metrics_host``); no port, no server.
    """
    settings = getattr(app.state, "settings", None)
    port = getattr(settings, "metrics_port", None)
    if not port:
        yield
        return
    stop = serve_metrics(getattr(settings, "metrics_host", None) or "127.0.0.1", port)
    try:
        yield
    finally:
        if stop is not None:
            stop()


def samples(families: Iterable[Any]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``{(sample name, sorted labels): value}`` of metric families (tests read metrics with it)."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in families
        for sample in family.samples
    }
