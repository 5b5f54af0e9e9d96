"""Prometheus metrics and the /health endpoint, served from a thread beside the event loop.

Two kinds of numbers:

- read from the state store at scrape time (`StoreCollector`): recordings by state, jobs in
  flight against the account's limit, sink deliveries by sink and state, the age of the
  oldest unfinished recording, and per node of a shared PostgreSQL store its heartbeat age,
  claims held and drain flag (no node samples on SQLite). A scrape reads through its own
  `Store.reader`: the daemon's `Store` belongs to the event-loop thread, and a reader never
  blocks the writer.
- counted as they happen: the Symbl client calls `record_api_request` for every HTTP
  attempt and `record_upload` for every accepted upload (module-level, so no handle is
  passed around; prometheus_client's counters are thread-safe).

`MetricsServer` serves both with the standard library's threaded HTTP server. ``/health``
answers 200 while ``health()["status"] == "ok"`` and 503 otherwise, for load balancers and
monitors; `Health` is the daemon's implementation of that callable.
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import metadata
from typing import Any
from urllib.parse import urlsplit

import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder

from ingestd import eventmetrics
from ingestd.errors import IngestdError, StoreError
from ingestd.eventmetrics import labelled
from ingestd.lifecycle import IN_FLIGHT, State
from ingestd.nodes import node_rows
from ingestd.store import Store, StoreSnapshot

log = structlog.get_logger()


# -- counters fed by the Symbl client ----------------------------------------------------

API_REQUESTS = Counter(
    "ingestd_api_requests",
    "Symbl API requests (each attempt) by route and HTTP status; status none = no answer",
    ["route", "status"],
    registry=None,
)
API_ERRORS = Counter(
    "ingestd_api_errors",
    "Symbl API requests answered with an error status, or not answered (status none)",
    ["status"],
    registry=None,
)
API_SECONDS = Histogram(
    "ingestd_api_request_seconds",
    "Symbl API request duration, per attempt",
    ["route"],
    registry=None,
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
UPLOADS = Counter("ingestd_uploads", "Uploads the Symbl API accepted", registry=None)
UPLOAD_BYTES = Counter("ingestd_upload_bytes", "Bytes of accepted uploads", registry=None)
UPLOAD_SECONDS = Histogram(
    "ingestd_upload_seconds",
    "Duration of accepted uploads, retries included",
    registry=None,
    buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)
RETRIES = Counter(
    "ingestd_retries",
    "Attempts scheduled again after a transient error: of a stage, or of a sink's delivery",
    ["what"],
    registry=None,
)
COUNTERS = (
    API_REQUESTS,
    API_ERRORS,
    API_SECONDS,
    UPLOADS,
    UPLOAD_BYTES,
    UPLOAD_SECONDS,
    RETRIES,
    *eventmetrics.COUNTERS,  # counted by the event hooks
)

_ID_SEGMENT = re.compile(r"^(?=.*\d)[0-9A-Za-z_-]{8,}$")


def route_label(route: str) -> str:
    """``GET /v1/job/8a3f…?x=1`` -> ``GET /v1/job/{id}``: ids would explode the label set."""
    method, _, path = route.rpartition(" ")
    if "?" in path or "#" in path or ":" in path:  # most routes are a bare path
        path = urlsplit(path).path
    parts = ["{id}" if _ID_SEGMENT.match(p) else p for p in path.split("/")]
    return f"{method} {'/'.join(parts)}".strip()


def record_api_request(route: str, status: int, seconds: float) -> None:
    """Count one HTTP attempt to the Symbl API.

    Args:
        route: ``METHOD /path``; ids in the path are replaced by ``{id}``.
        status: the HTTP status, or 0 when no answer came (connection error, timeout).
        seconds: how long the attempt took.
    """
    route = route_label(route)
    label = str(status) if status else "none"
    labelled(API_REQUESTS, route, label).inc()
    labelled(API_SECONDS, route).observe(max(0.0, seconds))
    if not status or status >= 400:
        labelled(API_ERRORS, label).inc()


def record_upload(size_bytes: int, seconds: float) -> None:
    """Count one upload the API accepted (a conversationId and jobId came back)."""
    UPLOADS.inc()
    UPLOAD_BYTES.inc(max(0, size_bytes))
    UPLOAD_SECONDS.observe(max(0.0, seconds))


def record_retry(what: str) -> None:
    """Count one retry scheduled by the pipeline: ``stage`` or ``sink``."""
    labelled(RETRIES, what).inc()


def counter_total(counter: Counter, **labels: str) -> float:
    """The sum of a counter's ``_total`` samples whose labels include `labels`."""
    return sum(
        sample.value
        for metric in counter.collect()
        for sample in metric.samples
        if sample.name.endswith("_total") and labels.items() <= sample.labels.items()
    )


# -- the store, read at scrape time --------------------------------------------------------


def read_snapshot(store: Store) -> StoreSnapshot:
    """A `StoreSnapshot` through a reader of its own (never the daemon's connection)."""
    reader = store.reader()
    try:
        return reader.snapshot()
    finally:
        reader.close()


class StoreCollector:
    """A prometheus_client collector that reads the state store on every scrape."""

    def __init__(
        self,
        read: Callable[[], StoreSnapshot],
        max_concurrent_jobs: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._read = read
        self._limit = max_concurrent_jobs
        self._clock = clock

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("ingestd_store_up", "1 when the last scrape could read the store")
        try:
            snap = self._read()
        except (StoreError, OSError) as exc:
            log.warning("metrics_store_unreadable", error=str(exc))
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up

        recordings = GaugeMetricFamily(
            "ingestd_recordings", "Recordings by state (ingestd.lifecycle.State)", labels=["state"]
        )
        for state in State:
            recordings.add_metric([str(state)], snap.states.get(str(state), 0))
        yield recordings

        in_flight = sum(snap.states.get(str(s), 0) for s in IN_FLIGHT)
        yield GaugeMetricFamily(
            "ingestd_jobs_in_flight", "Recordings submitting or submitted", value=in_flight
        )
        yield GaugeMetricFamily(
            "ingestd_jobs_limit",
            "symbl.max_concurrent_jobs, the account's limit",
            value=self._limit,
        )

        deliveries = GaugeMetricFamily(
            "ingestd_sink_deliveries",
            "Per-sink deliveries by state (pending, done, failed)",
            labels=["sink", "state"],
        )
        for (sink, state), count in sorted(snap.deliveries.items()):
            deliveries.add_metric([sink, state], count)
        yield deliveries

        age = 0.0
        if snap.oldest_unfinished_at is not None:
            age = max(0.0, self._clock() - snap.oldest_unfinished_at)
        yield GaugeMetricFamily(
            "ingestd_queue_age_seconds",
            "Age of the oldest recording not yet done, failed, rejected or duplicate; 0 if none",
            value=age,
        )
        yield from self._nodes(snap)

    def _nodes(self, snap: StoreSnapshot) -> Iterator[Metric]:
        """Per node of a shared store: alert on a heartbeat age past the lease (~30 s)."""
        heartbeat = GaugeMetricFamily(
            "ingestd_node_heartbeat_age_seconds",
            "Seconds since the node's last heartbeat in the shared state store",
            labels=["node"],
        )
        claims = GaugeMetricFamily(
            "ingestd_node_claims",
            "Recordings the node holds an unexpired claim on (drives now)",
            labels=["node"],
        )
        draining = GaugeMetricFamily(
            "ingestd_node_draining",
            "1 while the node is drained (ingestd drain): it claims nothing new",
            labels=["node"],
        )
        for node in node_rows(snap.nodes, snap.claims, self._clock()):
            heartbeat.add_metric([node["name"]], node["heartbeat_age_seconds"])
            claims.add_metric([node["name"]], node["claims"])
            draining.add_metric([node["name"]], 1 if node["draining"] else 0)
        yield heartbeat
        yield claims
        yield draining


class InfoCollector:
    """``ingestd_info{version=...} 1``, so dashboards can show what runs where."""

    def __init__(self) -> None:
        try:
            self._version = metadata.version("ingestd")
        except metadata.PackageNotFoundError:
            self._version = "unknown"

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily("ingestd_info", "The running ingestd", labels=["version"])
        info.add_metric([self._version], 1)
        yield info


# -- health --------------------------------------------------------------------------------


class Health:
    """What /health reports: written from the event loop, read from the server's threads.

    The daemon calls `ready()` after READY=1, `beat(dead_watchers)` from its heartbeat and
    `stopping()` at shutdown. A heartbeat older than `stale_after_seconds` means the event
    loop is stuck: exactly what a monitor should hear, although this thread still answers.
    """

    def __init__(
        self, stale_after_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.stale_after_seconds = stale_after_seconds
        self._clock = clock
        self._phase = "starting"
        self._last_beat = clock()
        self._dead: tuple[str, ...] = ()
        self._missing: dict[str, str] = {}

    def ready(self) -> None:
        self._phase = "running"
        self.beat()

    def beat(self, dead_watchers: Iterable[str] = ()) -> None:
        self._dead = tuple(dead_watchers)
        self._last_beat = self._clock()

    def stopping(self) -> None:
        self._phase = "stopping"

    def folders_missing(self, missing: dict[str, tuple[str, float]]) -> None:
        """Watch folders that are gone: watch name -> (problem, since), from the daemon."""
        self._missing = {name: problem for name, (problem, _) in missing.items()}

    def __call__(self) -> dict[str, Any]:
        age = self._clock() - self._last_beat
        if self._phase != "running":
            status = self._phase
        elif self._dead:
            status = "watcher_dead"
        elif self._missing:
            status = "watch_folder_missing"
        elif age > self.stale_after_seconds:
            status = "event_loop_stalled"
        else:
            status = "ok"
        return {
            "status": status,
            "phase": self._phase,
            "heartbeat_age_seconds": round(age, 3),
            "dead_watchers": list(self._dead),
            "missing_watch_folders": dict(self._missing),
            "pid": os.getpid(),
        }


# -- the HTTP server -----------------------------------------------------------------------


def parse_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[IPV6]:PORT`` -> (host, port); port 0 picks a free one."""
    host, sep, port = listen.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise IngestdError(f"metrics.listen: expected HOST:PORT, got {listen!r}")
    return host, int(port)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    app: MetricsServer


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "ingestd"
    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:
        self._serve(head=False)

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def _serve(self, *, head: bool) -> None:
        app = self.server.app
        path = urlsplit(self.path).path.rstrip("/") or "/"
        try:
            if path == "/metrics":
                encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
                self._send(200, content_type, encoder(app.registry), head)
            elif path in ("/health", "/healthz"):
                status, body = app.health_response()
                self._send(status, "application/json", body, head)
            elif path == "/":
                text = b"ingestd: /metrics (Prometheus), /health (JSON; 200 ok, 503 not)\n"
                self._send(200, "text/plain; charset=utf-8", text, head)
            else:
                self._send(404, "text/plain; charset=utf-8", b"not found\n", head)
        except Exception as exc:  # a scrape must never take the daemon down
            log.error("metrics_request_failed", path=path, error=repr(exc))
            self._send(500, "text/plain; charset=utf-8", b"internal error\n", head)

    def _send(self, status: int, content_type: str, body: bytes, head: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the access log: stderr would break journald's one-JSON-event-a-line."""


class MetricsServer:
    """``/metrics`` and ``/health`` on `listen`, served from a background thread.

    Args:
        listen: ``HOST:PORT`` (``metrics.listen`` in the config).
        store: the state store; each scrape reads through a `Store.reader` of its own.
        health: returns the /health document; ``status: ok`` answers 200, anything else 503.
            Called from a server thread, so it must not touch the daemon's `Store`.
        max_concurrent_jobs: the account's job limit, exported beside jobs in flight.
    """

    def __init__(
        self,
        listen: str,
        store: Store,
        *,
        health: Callable[[], dict[str, Any]],
        max_concurrent_jobs: int,
    ) -> None:
        self.listen = listen
        self.host, self.port = parse_listen(listen)
        self.health = health
        self.registry = CollectorRegistry()
        self.registry.register(StoreCollector(lambda: read_snapshot(store), max_concurrent_jobs))
        self.registry.register(InfoCollector())
        for metric in COUNTERS:
            self.registry.register(metric)
        ProcessCollector(registry=self.registry)
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def health_response(self) -> tuple[int, bytes]:
        try:
            document = self.health()
        except Exception as exc:
            document = {"status": "error", "error": repr(exc)}
        status = 200 if document.get("status") == "ok" else 503
        return status, json.dumps(document, default=str).encode() + b"\n"

    def start(self) -> None:
        """Bind and serve in a daemon thread; raise `IngestdError` if the port is taken."""
        try:
            family = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)[0][0]
            server_class = type("_BoundServer", (_Server,), {"address_family": family})
            self._httpd = server_class((self.host, self.port), _Handler)
        except OSError as exc:
            raise IngestdError(
                f"metrics.listen {self.listen}: cannot listen: {exc.strerror or exc}; "
                f"choose another address or stop what uses it"
            ) from None
        self._httpd.app = self
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="ingestd-metrics", daemon=True
        )
        self._thread.start()
        log.info("metrics_listening", url=self.url, endpoints=["/metrics", "/health"])

    def stop(self) -> None:
        """Stop serving and close the socket; in-flight requests finish in their threads."""
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None
