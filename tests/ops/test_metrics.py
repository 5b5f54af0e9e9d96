"""Prometheus metrics and /health: scraped over real HTTP, parsed with prometheus_client."""

from __future__ import annotations

import json
import socket
import sqlite3
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ingestd import metrics
from ingestd.errors import IngestdError
from ingestd.lifecycle import State
from ingestd.metrics import Health, MetricsServer, route_label
from ingestd.store import SqliteStore, Store
from ingestd.testing import drop, wait_for

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

CHAIN = [
    State.PROBED,
    State.TRANSCODED,
    State.QUEUED,
    State.SUBMITTING,
    State.SUBMITTED,
    State.FETCHING,
    State.DELIVERING,
    State.DONE,
]


def get(url: str, method: str = "GET") -> tuple[int, str, str]:
    """(status, content type, body) of a request; error statuses are answers too."""
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


def scrape(url: str) -> Samples:
    status, content_type, body = get(f"{url}/metrics")
    assert status == 200 and content_type.startswith("text/plain"), (status, content_type)
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def advance(store: Store, recording_id: int, to: State, **kwargs: Any) -> None:
    """Walk the lifecycle table from discovered to `to`."""
    for state in CHAIN[: CHAIN.index(to) + 1]:
        extra = kwargs if state is State.DELIVERING else {}
        store.transition(recording_id, state, **extra)


def add(store: Store, name: str) -> int:
    row = store.insert(
        watch="inbox",
        watch_root="/srv/in",
        relpath=name,
        size_bytes=len(name),
        mtime=1.0,
        sha256=name,
    )
    return row.id


def backdate(place: Path | str, recording_id: int, seconds: float) -> None:
    """Make a recording older than it is (created_at), on either store."""
    sql = "UPDATE recordings SET created_at = created_at - {} WHERE id = {}"
    if isinstance(place, Path):
        with sqlite3.connect(place) as conn:
            conn.execute(sql.format("?", "?"), (seconds, recording_id))
    else:
        with psycopg.connect(place) as conn:
            conn.execute(sql.format("%s", "%s"), (seconds, recording_id))


@pytest.fixture
def served(store: Store) -> Iterator[tuple[MetricsServer, Health]]:
    health = Health(stale_after_seconds=30)
    server = MetricsServer("127.0.0.1:0", store, health=health, max_concurrent_jobs=5)
    server.start()
    try:
        yield server, health
    finally:
        server.stop()


class TestStoreMetrics:
    def test_values_from_the_store(self, store_place, store: Store, served) -> None:
        """Recordings by state, jobs in flight vs the limit, deliveries, queue age."""
        server, _ = served
        queued = add(store, "queued.wav")
        advance(store, queued, State.QUEUED)
        for name in ("a.wav", "b.wav"):
            advance(store, add(store, name), State.SUBMITTED)
        advance(store, add(store, "c.wav"), State.SUBMITTING)
        done = add(store, "done.wav")
        advance(store, done, State.DONE, deliveries=["files", "slack"])
        store.mark_delivery(done, "files", state="done")
        store.mark_delivery(done, "slack", state="done")
        late = add(store, "late.wav")
        advance(store, late, State.DELIVERING, deliveries=["files", "slack"])
        store.mark_delivery(late, "files", state="done")
        store.mark_delivery(late, "slack", state="failed", error="HTTP 500")
        store.transition(add(store, "bad.wav"), State.REJECTED, error="no audio stream")
        backdate(store_place, queued, 120)  # the queued one arrived 2 minutes ago

        samples = scrape(server.url)

        recordings = {str(s): value(samples, "ingestd_recordings", state=str(s)) for s in State}
        assert recordings == {
            **{str(s): 0 for s in State},
            "queued": 1,
            "submitted": 2,
            "submitting": 1,
            "delivering": 1,
            "done": 1,
            "rejected": 1,
        }
        assert value(samples, "ingestd_jobs_in_flight") == 3
        assert value(samples, "ingestd_jobs_limit") == 5
        deliveries = {
            (dict(labels)["sink"], dict(labels)["state"]): v
            for (name, labels), v in samples.items()
            if name == "ingestd_sink_deliveries"
        }
        assert deliveries == {
            ("files", "done"): 2,
            ("slack", "done"): 1,
            ("slack", "failed"): 1,
        }
        assert 119 <= value(samples, "ingestd_queue_age_seconds") < 140
        assert value(samples, "ingestd_store_up") == 1
        assert any(name == "ingestd_info" for name, _ in samples)
        assert value(samples, "process_open_fds") > 0

    def test_empty_store(self, served) -> None:
        """A fresh store: every state at 0, no queue age, nothing in flight."""
        server, _ = served
        samples = scrape(server.url)
        assert value(samples, "ingestd_recordings", state="done") == 0
        assert value(samples, "ingestd_queue_age_seconds") == 0
        assert value(samples, "ingestd_jobs_in_flight") == 0

    def test_unreadable_store_is_reported_not_fatal(self, tmp_path: Path) -> None:
        """A store that cannot be read gives ingestd_store_up 0, and the scrape still works."""

        class Missing:
            def reader(self) -> SqliteStore:
                return SqliteStore.read_only(tmp_path / "nowhere" / "state.db")

        server = MetricsServer("127.0.0.1:0", Missing(), health=dict, max_concurrent_jobs=5)  # type: ignore[arg-type]
        server.start()
        try:
            samples = scrape(server.url)
        finally:
            server.stop()
        assert value(samples, "ingestd_store_up") == 0
        assert value(samples, "ingestd_recordings", state="done") is None


class TestCounters:
    def test_api_and_upload_counters(self, served) -> None:
        """The functions the Symbl client calls show up in the next scrape."""
        server, _ = served
        before = scrape(server.url)
        metrics.record_api_request("GET /v1/job/5f1c9d1e-8c4a-4e7b-9d1e-000000000001", 200, 0.1)
        metrics.record_api_request("POST /v1/process/audio", 429, 0.05)
        metrics.record_api_request("GET /v1/conversations/6012345678901234/messages", 0, 30)
        metrics.record_upload(1000, 2.5)
        after = scrape(server.url)

        def delta(name: str, **labels: str) -> float:
            return (value(after, name, **labels) or 0) - (value(before, name, **labels) or 0)

        requests = "ingestd_api_requests_total"
        assert delta(requests, route="GET /v1/job/{id}", status="200") == 1
        assert delta(requests, route="POST /v1/process/audio", status="429") == 1
        assert delta(requests, route="GET /v1/conversations/{id}/messages", status="none") == 1
        assert delta("ingestd_api_errors_total", status="429") == 1
        assert delta("ingestd_api_errors_total", status="none") == 1
        assert delta("ingestd_api_errors_total", status="200") == 0
        assert delta("ingestd_api_request_seconds_count", route="GET /v1/job/{id}") == 1
        assert delta("ingestd_uploads_total") == 1
        assert delta("ingestd_upload_bytes_total") == 1000
        assert delta("ingestd_upload_seconds_count") == 1
        assert delta("ingestd_upload_seconds_sum") == pytest.approx(2.5)

    @pytest.mark.parametrize(
        ("route", "label"),
        [
            ("GET /v1/job/5f1c9d1e-8c4a-4e7b-9d1e-4f9c8b7a6e5d", "GET /v1/job/{id}"),
            ("PUT /v1/process/video/6012345678901234?name=x", "PUT /v1/process/video/{id}"),
            ("POST /oauth2/token:generate", "POST /oauth2/token:generate"),
            ("GET /v1/conversations", "GET /v1/conversations"),
        ],
    )
    def test_route_label(self, route: str, label: str) -> None:
        """Ids and query strings never become label values."""
        assert route_label(route) == label


class TestHealth:
    def test_status_codes_follow_the_daemon(self, served) -> None:
        """503 while starting, 200 running, 503 with a dead watcher, 503 stopping."""
        server, health = served
        status, content_type, body = get(f"{server.url}/health")
        assert (status, json.loads(body)["status"]) == (503, "starting")
        assert content_type == "application/json"
        health.ready()
        status, _, body = get(f"{server.url}/health")
        document = json.loads(body)
        assert (status, document["status"], document["dead_watchers"]) == (200, "ok", [])
        assert get(f"{server.url}/health", method="HEAD")[::2] == (200, "")
        health.beat(["sales"])
        status, _, body = get(f"{server.url}/health")
        assert (status, json.loads(body)["dead_watchers"]) == (503, ["sales"])
        health.beat([])
        assert get(f"{server.url}/healthz")[0] == 200
        health.stopping()
        assert get(f"{server.url}/health")[0] == 503

    def test_stalled_event_loop(self) -> None:
        """No heartbeat for longer than stale_after_seconds: the loop is stuck, say so."""
        now = [1000.0]
        health = Health(stale_after_seconds=30, clock=lambda: now[0])
        health.ready()
        now[0] += 29
        assert health()["status"] == "ok"
        now[0] += 2
        assert health()["status"] == "event_loop_stalled"
        assert health()["heartbeat_age_seconds"] == 31

    def test_health_that_raises(self, store: Store) -> None:
        """A failing health() is a 503 with the error, not a dead server thread."""

        def broken() -> dict[str, Any]:
            raise RuntimeError("boom")

        server = MetricsServer("127.0.0.1:0", store, health=broken, max_concurrent_jobs=1)
        server.start()
        try:
            status, _, body = get(f"{server.url}/health")
            assert status == 503 and "boom" in json.loads(body)["error"]
            assert get(f"{server.url}/metrics")[0] == 200
        finally:
            server.stop()


class TestServer:
    def test_unknown_path(self, served) -> None:
        server, _ = served
        assert get(f"{server.url}/nope")[0] == 404

    def test_port_in_use(self, store: Store) -> None:
        """A taken port is one clear error naming the setting."""
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            server = MetricsServer(f"127.0.0.1:{port}", store, health=dict, max_concurrent_jobs=1)
            with pytest.raises(IngestdError, match=f"metrics.listen 127.0.0.1:{port}"):
                server.start()

    def test_stop_frees_the_port(self, store: Store) -> None:
        server = MetricsServer("127.0.0.1:0", store, health=dict, max_concurrent_jobs=1)
        server.start()
        url = server.url
        server.stop()
        with pytest.raises(urllib.error.URLError):
            urllib.request.urlopen(f"{url}/metrics", timeout=2)

    def test_ipv6_listen(self, store: Store) -> None:
        if not socket.has_ipv6:
            pytest.skip("no IPv6")
        server = MetricsServer("[::1]:0", store, health=dict, max_concurrent_jobs=1)
        try:
            server.start()
        except IngestdError as exc:
            pytest.skip(f"IPv6 loopback unavailable: {exc}")
        try:
            assert server.url.startswith("http://[::1]:")
            assert get(f"{server.url}/metrics")[0] == 200
        finally:
            server.stop()

    @pytest.mark.parametrize("listen", ["9100", "localhost", ":9100", "host:99999"])
    def test_bad_listen(self, store: Store, listen: str) -> None:
        with pytest.raises(IngestdError, match="expected HOST:PORT"):
            MetricsServer(listen, store, health=dict, max_concurrent_jobs=1)


class TestAfterARealRun:
    def test_store_metrics_while_the_daemon_runs(self, ingestd_env, make_media) -> None:
        """Scraped from a separate read-only connection while the daemon writes the store."""
        daemon = ingestd_env.daemon().start()
        daemon.wait_ready()
        drop(make_media("call.wav", seconds=1), ingestd_env.inbox)
        (ingestd_env.root / "staging").mkdir(exist_ok=True)
        broken = ingestd_env.root / "staging" / "broken.wav"
        broken.write_bytes(b"RIFF not really a wav file" * 100)
        drop(broken, ingestd_env.inbox)
        ingestd_env.wait_states({"call.wav": "done", "broken.wav": "rejected"})

        class Running:  # the daemon's store, seen from this process: a reader is all we use
            def reader(self) -> SqliteStore:
                return SqliteStore.read_only(ingestd_env.state_db)

        server = MetricsServer("127.0.0.1:0", Running(), health=dict, max_concurrent_jobs=5)  # type: ignore[arg-type]
        server.start()
        try:
            samples = scrape(server.url)
        finally:
            server.stop()
        assert value(samples, "ingestd_recordings", state="done") == 1
        assert value(samples, "ingestd_recordings", state="rejected") == 1
        assert value(samples, "ingestd_sink_deliveries", sink="files", state="done") == 1
        assert value(samples, "ingestd_jobs_in_flight") == 0
        assert value(samples, "ingestd_queue_age_seconds") == 0
        assert daemon.stop() == 0

    def test_the_daemon_serves_metrics_and_health(self, ingestd_env, make_media) -> None:
        """With metrics.listen set, the daemon itself serves /metrics (its API and upload
        counters included) and /health."""
        daemon = ingestd_env.daemon(metrics={"listen": "127.0.0.1:0"}).start()
        daemon.wait_ready()
        listening = [e for e in daemon.events() if e.get("event") == "metrics_listening"]
        assert listening, (
            "the daemon did not log metrics_listening: Daemon._serve must start "
            "ingestd.metrics.MetricsServer when config.metrics_listen is set"
        )
        url = listening[0]["url"]
        media = make_media("call.wav", seconds=1)
        size = media.stat().st_size
        drop(media, ingestd_env.inbox)
        ingestd_env.wait_states({"call.wav": "done"})

        def counted() -> Samples | None:
            samples = scrape(url)
            return samples if value(samples, "ingestd_uploads_total") == 1 else None

        samples = wait_for(counted, 10, "ingestd_uploads_total 1")

        # counted by the core's event plugin (ingestd.eventmetrics), right after each commit
        def finished() -> Samples | None:
            samples = scrape(url)
            done = value(samples, "ingestd_recordings_finished_total", outcome="done")
            return samples if done == 1 else None

        samples = wait_for(finished, 10, "ingestd_recordings_finished_total{outcome=done} 1")
        assert value(samples, "ingestd_state_changes_total", old="none", new="discovered") == 1
        assert value(samples, "ingestd_state_changes_total", old="delivering", new="done") == 1
        assert value(samples, "ingestd_upload_bytes_total") == size
        assert value(samples, "ingestd_upload_seconds_count") == 1
        ok = sum(
            v
            for (name, labels), v in samples.items()
            if name == "ingestd_api_requests_total" and dict(labels)["status"].startswith("2")
        )
        assert ok >= 3, "token, upload, job polls and insight fetches are counted"
        assert value(samples, "ingestd_recordings", state="done") == 1
        assert value(samples, "ingestd_sink_deliveries", sink="files", state="done") == 1
        status, _, body = get(f"{url}/health")
        assert status == 200 and json.loads(body)["status"] == "ok"
        assert daemon.stop() == 0
