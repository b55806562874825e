"""Prometheus metrics under Distribution's names, so existing registry dashboards work.

Distribution (through docker/go-metrics) labels every HTTP metric with the route name
(``base``, ``manifest``, ``blob``, ``blob_upload``, ``blob_upload_chunk``, ``tags``, ``catalog``;
ours adds ``root`` and ``unknown``) and times every storage-driver call by driver and action.
Our own metrics are prefixed ``layerstore_``. Everything lives in prometheus-client's default
registry, which also carries the ``process_`` and ``python_`` collectors.

Other modules add metrics through :func:`counter`, :func:`gauge` and :func:`histogram`
(``metrics.counter("redis", "errors_total", "Redis errors", ["op"])`` is
``layerstore_redis_errors_total{op}``); the debug server exposes them all.

With ``http.workers`` > 1 prometheus-client runs in multiprocess mode: ``serve`` sets
``PROMETHEUS_MULTIPROC_DIR`` before the workers start, each worker writes its values there, the
supervisor's debug server reads them all (:class:`MultiProcessCollector`: counters and histograms
summed; gauges by their mode: in-progress counts summed over live workers, times the latest,
last-run values the most recent, see :func:`gauge`) and marks a worker's files dead when it
exits. The snapshot sources (counters kept without prometheus-client) are copied into such
counters and gauges every :data:`SNAPSHOT_SYNC_SECONDS` by each worker, so a scrape sees them
combined too, at most that late.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal

import prometheus_client
from prometheus_client import Counter, Gauge, Histogram
from prometheus_client import multiprocess as prometheus_multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from .. import observe

OURS = "layerstore"
#: docker/go-metrics' defaults, kept so that Distribution's dashboards bucket alike.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 60, 120, 300)
SIZE_BUCKETS = tuple(float(4**k) for k in range(4, 17))  # 256 B … 4 GiB
#: prometheus-client's switch to multiprocess mode (read when it is imported).
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: How often a worker copies the snapshot sources into the multiprocess files.
SNAPSHOT_SYNC_SECONDS = 2.0
#: How a gauge's values from several workers combine (a subset of prometheus-client's modes).
GaugeMode = Literal["livesum", "max", "mostrecent"]
#: Distribution's action names (its Go method names) for our driver operations.
ACTIONS = {
    "get_content": "GetContent", "put_content": "PutContent",
    "put_content_if_absent": "PutContentIfAbsent", "reader": "Reader", "writer": "Writer",
    "stat": "Stat", "list": "List", "move": "Move", "delete": "Delete",
    "redirect_url": "RedirectURL", "walk": "Walk", "delete_many": "DeleteMany",
}


def counter(subsystem: str, name: str, doc: str, labels: Sequence[str] = ()) -> Counter:
    """A ``layerstore_<subsystem>_<name>`` counter in the exported registry."""
    return Counter(name, doc, labels, namespace=OURS, subsystem=subsystem)


def gauge(subsystem: str, name: str, doc: str, labels: Sequence[str] = (),
          mode: GaugeMode = "livesum") -> Gauge:
    """A ``layerstore_<subsystem>_<name>`` gauge; ``mode`` is how workers' values combine.

    ``livesum`` (the default) for things in progress, summed over the live workers; ``max``
    for timestamps; ``mostrecent`` for the last run's values (see :func:`snapshot_mode`).
    """
    return Gauge(name, doc, labels, namespace=OURS, subsystem=subsystem,
                 multiprocess_mode=mode)


def snapshot_mode(key: str) -> GaugeMode:
    """The multiprocess mode of a snapshot gauge (every one is a last run's value).

    A time (``…_finished``) is the latest any worker wrote (``max``); any other ``last_…`` value
    is the one written most recently (``mostrecent``: :meth:`_SnapshotCollector.sync` sets a
    gauge only when its value changes, so that is the worker whose run finished last). Never
    summed: a sum of timestamps means nothing.
    """
    return "max" if key.endswith("_finished") else "mostrecent"


def histogram(subsystem: str, name: str, doc: str, labels: Sequence[str] = (),
              buckets: Sequence[float] = DURATION_BUCKETS) -> Histogram:
    """A ``layerstore_<subsystem>_<name>`` histogram in the exported registry."""
    return Histogram(name, doc, labels, namespace=OURS, subsystem=subsystem, buckets=buckets)


# -- Distribution's names ---------------------------------------------------------------------

HTTP_REQUESTS = Counter("registry_http_requests_total", "HTTP requests answered",
                        ["handler", "method", "code"])
HTTP_DURATION = Histogram("registry_http_request_duration_seconds", "HTTP request latency",
                          ["handler", "method"], buckets=DURATION_BUCKETS)
HTTP_IN_FLIGHT = Gauge("registry_http_in_flight_requests", "HTTP requests being served",
                       ["handler"], multiprocess_mode="livesum")
HTTP_REQUEST_SIZE = Histogram("registry_http_request_size_bytes", "HTTP request body sizes",
                              ["handler"], buckets=SIZE_BUCKETS)
HTTP_RESPONSE_SIZE = Histogram("registry_http_response_size_bytes", "HTTP response body sizes",
                               ["handler"], buckets=SIZE_BUCKETS)
STORAGE_ACTION = Histogram("registry_storage_action_seconds", "Storage driver call latency",
                           ["driver", "action"], buckets=DURATION_BUCKETS)

# -- ours --------------------------------------------------------------------------------------

UPLOADS_IN_PROGRESS = gauge("uploads", "in_progress", "Blob upload requests streaming data now")
BYTES_RECEIVED = counter("http", "received_bytes_total", "Request body bytes read", ["handler"])
BYTES_SERVED = counter("http", "served_bytes_total", "Response body bytes sent", ["handler"])
EVENTS = counter("registry", "events_total",
                 "Core events: " + "; ".join(f"{k}: {v}" for k, v in observe.EVENTS.items()),
                 ["event"])
NOTIFICATIONS = counter("notifications", "deliveries_total",
                        "Webhook deliveries by endpoint and outcome", ["endpoint", "outcome"])


class _RequestIds:
    """Unique request ids in a UUID's shape, ≈0.5 µs where ``str(uuid.uuid4())`` takes ≈3 µs.

    ``xxxxxxxx-xxxx-xxxx-cccc-cccccccccccc``: 64 random bits drawn once per process (again in
    a forked child) and a 64-bit counter, so ids never repeat within a process and collide
    across processes only as two random 64-bit values do.
    """

    def __init__(self) -> None:
        self._reseed()
        os.register_at_fork(after_in_child=self._reseed)

    def _reseed(self) -> None:
        r = os.urandom(8).hex()
        self._prefix = f"{r[:8]}-{r[8:12]}-{r[12:]}-"
        self._count = itertools.count()  # next() is atomic under the GIL

    def __call__(self) -> str:
        n = next(self._count)
        return f"{self._prefix}{n >> 48 & 0xFFFF:04x}-{n & 0xFFFFFFFFFFFF:012x}"


new_request_id = _RequestIds()

#: Routes whose request bodies are blob data (a monolithic POST, PATCH and the final PUT).
UPLOAD_ROUTES = {"blob_upload", "blob_upload_chunk"}


@dataclasses.dataclass
class RequestRecord:
    """One request as the instrumenting middleware saw it (also what the access log prints)."""

    method: str
    path: str
    route: str
    #: The ASGI scope (headers, query, client address), for consumers that need more.
    scope: Mapping[str, Any] = dataclasses.field(default_factory=dict, repr=False)
    id: str = dataclasses.field(default_factory=new_request_id)
    #: The response's headers as sent (raw ASGI pairs).
    response_headers: list[tuple[bytes, bytes]] = dataclasses.field(default_factory=list,
                                                                    repr=False)
    #: The authenticated user, set by the app once it knows.
    user: str | None = None
    started: float = dataclasses.field(default_factory=time.perf_counter)
    status: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    duration: float = 0.0


def request_started(record: RequestRecord) -> None:
    HTTP_IN_FLIGHT.labels(record.route).inc()
    if record.route in UPLOAD_ROUTES and record.method in ("POST", "PATCH", "PUT"):
        UPLOADS_IN_PROGRESS.inc()


def request_finished(record: RequestRecord) -> None:
    """Count a finished (or abandoned: status 0 is exported as code ``0``) request."""
    route = record.route
    HTTP_IN_FLIGHT.labels(route).dec()
    if route in UPLOAD_ROUTES and record.method in ("POST", "PATCH", "PUT"):
        UPLOADS_IN_PROGRESS.dec()
    HTTP_REQUESTS.labels(route, record.method, str(record.status)).inc()
    HTTP_DURATION.labels(route, record.method).observe(record.duration)
    HTTP_REQUEST_SIZE.labels(route).observe(record.bytes_in)
    HTTP_RESPONSE_SIZE.labels(route).observe(record.bytes_out)
    BYTES_RECEIVED.labels(route).inc(record.bytes_in)
    BYTES_SERVED.labels(route).inc(record.bytes_out)


def _storage_call(driver: str, action: str, seconds: float) -> None:
    STORAGE_ACTION.labels(driver, ACTIONS.get(action, action)).observe(seconds)


def _event(name: str, count: int) -> None:
    EVENTS.labels(name).inc(count)


def install() -> None:
    """Subscribe to the core's storage calls and events (idempotent)."""
    observe.on_storage_call(_storage_call)
    observe.on_event(_event)


Snapshot = Callable[[], Mapping[str, float | int | None]]


class _SnapshotCollector(prometheus_client.registry.Collector):
    """Counters kept by modules that must not depend on prometheus-client, read at scrape time.

    Each source is a ``snapshot()`` of plain numbers (the scrub's, the proxy's, the fleet
    cache's); a key in ``totals`` is a counter ``layerstore_<subsystem>_<key>_total``, any other
    a gauge ``layerstore_<subsystem>_<key>`` (None values are left out).
    """

    def __init__(self) -> None:
        self.sources: dict[str, tuple[Snapshot, frozenset[str]]] = {}
        #: Multiprocess mode: the counters and gauges the snapshots are copied into.
        self._copies: dict[str, tuple[Counter | Gauge, list[float]]] = {}

    def sync(self) -> None:
        """Copy every snapshot into multiprocess counters (by increments) and gauges.

        A counter gains what this worker counted since the last sync, so the supervisor's sum
        counts a run once: in the worker that ran it (a leased job runs in one worker at a
        time; the others count it skipped). A gauge is set when its value changes, in the mode
        :func:`snapshot_mode` gives it; a dead worker's value stays (``last_*`` outlive it).
        """
        for subsystem, (snapshot, totals) in sorted(self.sources.items()):
            for key, value in snapshot().items():
                if value is None:
                    continue
                name = f"{OURS}_{subsystem}_{key}"
                if name not in self._copies:
                    doc = f"{subsystem}: {key.replace('_', ' ')}"
                    metric: Counter | Gauge = (
                        Counter(name, doc, registry=None) if key in totals
                        else Gauge(name, doc, registry=None,
                                   multiprocess_mode=snapshot_mode(key)))
                    # a gauge's NaN is never equal: the first value is always set
                    self._copies[name] = (metric, [0.0 if key in totals else float("nan")])
                metric, last = self._copies[name]
                if isinstance(metric, Gauge):
                    if float(value) != last[0]:
                        metric.set(float(value))
                elif float(value) > last[0]:
                    metric.inc(float(value) - last[0])
                last[0] = float(value)

    def collect(self) -> Iterator[prometheus_client.Metric]:
        for subsystem, (snapshot, totals) in sorted(self.sources.items()):
            for key, value in sorted(snapshot().items()):
                if value is None:
                    continue
                name = f"{OURS}_{subsystem}_{key}"
                doc = f"{subsystem}: {key.replace('_', ' ')}"
                family: prometheus_client.Metric
                if key in totals:
                    family = CounterMetricFamily(name, doc, value=float(value))
                else:
                    family = GaugeMetricFamily(name, doc, value=float(value))
                yield family


_SNAPSHOTS = _SnapshotCollector()
prometheus_client.REGISTRY.register(_SNAPSHOTS)


def export_snapshot(subsystem: str, snapshot: Snapshot, totals: Iterable[str] = ()) -> None:
    """Expose ``snapshot()``'s numbers under ``layerstore_<subsystem>_…`` (replaces a source)."""
    _SNAPSHOTS.sources[subsystem] = (snapshot, frozenset(totals))


def multiprocess_dir() -> str | None:
    """The directory the workers write their values to (multiprocess mode), else None."""
    return os.environ.get(MULTIPROC_ENV) or None


async def sync_snapshots() -> None:
    """In a worker (multiprocess mode): copy the snapshot sources out, until cancelled."""
    try:
        while True:
            _SNAPSHOTS.sync()
            await asyncio.sleep(SNAPSHOT_SYNC_SECONDS)
    finally:
        _SNAPSHOTS.sync()  # what the worker counted last, before it exits


def worker_exited(pid: int) -> None:
    """Drop an exited worker's live gauges (its counters stay in the sums)."""
    directory = multiprocess_dir()
    if directory is not None:
        prometheus_multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]  # untyped upstream


def exposition(accept: str | None) -> tuple[bytes, str]:
    """The current text exposition (every worker's, summed, with workers), as ``accept`` asks."""
    encoder, content_type = prometheus_client.exposition.choose_encoder(accept or "")
    registry = prometheus_client.REGISTRY
    directory = multiprocess_dir()
    if directory is not None:
        registry = prometheus_client.CollectorRegistry()
        prometheus_multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]  # untyped upstream
    return encoder(registry), content_type
