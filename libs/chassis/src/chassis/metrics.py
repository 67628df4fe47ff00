"""Prometheus metrics: every service's HTTP traffic and the domain's ``clinic_*`` metrics.

Each service process serves ``/metrics`` on a port of its own (``METRICS_PORT``, on
``METRICS_HOST``), never on its API port, so the gateway cannot route to it; each worker
process of one service (``WEB_CONCURRENCY``) takes the next free port. Unset, the process
serves none (test apps, one-off commands).

- HTTP traffic, by route template, is measured by ``prometheus-fastapi-instrumentator``
  (``instrument``): ``http_requests_total{handler,method,status}`` (status grouped as 2xx,
  4xx, 5xx) and ``http_request_duration_seconds{handler,method}``.
- Domain counters and histograms are module-level objects made once per process with
  ``counter``/``gauge``/``histogram`` (the same name twice returns the same metric, so
  test sessions that build many apps in one process do not clash), incremented where the
  thing happens: an ``inc()`` is a lock and an addition, nothing more.
- Gauges that need a query (the outbox's depth, the oldest event's age) are computed when
  Prometheus scrapes, by one collector per process that each running app adds its source to
  (``chassis.messaging.metrics.OutboxBacklog``): no request pays for them.

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

import functools
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from fastapi import FastAPI
from prometheus_client import Counter, Gauge, Histogram, start_http_server
from prometheus_client.metrics import MetricWrapperBase
from prometheus_fastapi_instrumentator import Instrumentator
from prometheus_fastapi_instrumentator import metrics as http_metrics

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


def instrument(app: FastAPI) -> None:
    """Count and time ``app``'s requests by route template (not by raw path: bounded labels).

    Only the request counter and the duration histogram: the library's default set also
    measures request and response sizes, which nobody here reads and every request would pay.
    Health probes are left out (the orchestrator calls them every few seconds).
    """
    Instrumentator(
        should_group_status_codes=True,
        should_ignore_untemplated=False,
        should_group_untemplated=True,
        excluded_handlers=["^/health"],
    ).add(*_http_instrumentations()).instrument(app)


@functools.cache
def _http_instrumentations() -> tuple[Callable[..., None], ...]:
    """The library's request counter and duration histogram, made once per process: made again
    (another app in the same process, as in a test session), the library finds them registered
    and returns no instrumentation at all."""
    return (
        http_metrics.requests(),
        http_metrics.latency(should_include_status=False, buckets=HTTP_BUCKETS),
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
