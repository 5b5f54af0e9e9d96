"""The dashboard server without a daemon: config, read-only mode, guards, store reads, limits.

A real store on disk, the real server on a loopback port, real HTTP; the daemon's `Live`
view is a fixed snapshot here (the browser tests use the real daemon).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ingestd.config import Secret
from ingestd.configload import parse_config
from ingestd.dashboard import DashboardServer, Live
from ingestd.dashboard.actions import Actions
from ingestd.dashboard.auth import Guard
from ingestd.dashboard.reads import STATE_WORDS
from ingestd.errors import ConfigError, IngestdError, StoreError
from ingestd.lifecycle import State
from ingestd.logging import register_secrets
from ingestd.store import SqliteStore, Store

TOKEN = "a-token-for-the-server-tests-42"
BASE = "symbl: {base_url: sandbox}\nwatch: [{path: in}]\n"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the 303 itself is the answer (with its Set-Cookie)


def request(
    url: str, method: str = "GET", body: bytes | None = None, follow: bool = True, **headers: str
):
    req = urllib.request.Request(url, method=method, data=body, headers=headers)
    opener = urllib.request.build_opener() if follow else urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(req, timeout=10) as response:
            return response.status, response.headers, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read().decode()


def add(
    store: Store,
    relpath: str,
    state: State = State.DISCOVERED,
    root: Path | None = None,
    **columns: Any,
) -> int:
    """A recording row; with `root`, its file exists there, unchanged (a retry re-queues
    only a recording whose file still holds what was recorded)."""
    if root is not None:
        (root / relpath).write_bytes(b"x" * 100)
        os.utime(root / relpath, (1.0, 1.0))
    row = store.insert(
        watch="calls",
        watch_root=str(root or "/srv/calls"),
        relpath=relpath,
        size_bytes=100,
        mtime=1.0,
        sha256=relpath,
    )
    if state is not State.DISCOVERED:
        store.transition(row.id, state, **columns)
    return row.id


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = SqliteStore(tmp_path / "state" / "state.db")
    yield store
    store.close()


def serve(store: Store, tmp_path: Path, token: str | None) -> DashboardServer:
    config = tmp_path / "ingestd.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "symbl": {"base_url": "sandbox"},
                "state": {"url": f"sqlite:///{store.path}"},
                "watch": [{"path": str(tmp_path / "in"), "name": "calls"}],
                "sinks": [{"type": "files", "path": str(tmp_path / "out")}],
            }
        )
    )
    woken: list[float] = []
    server = DashboardServer(
        "127.0.0.1:0",
        store.reader,
        live=lambda: Live(started_at=time.time(), version="test", job_limit=2, sinks=("files",)),
        actions=Actions(config, lambda: woken.append(time.time())),
        guard=Guard(Secret(token) if token else None),
    )
    server.woken = woken  # type: ignore[attr-defined]
    server.start()
    return server


@pytest.fixture
def served(store: Store, tmp_path: Path) -> Iterator[DashboardServer]:
    server = serve(store, tmp_path, TOKEN)
    yield server
    server.stop()


class TestConfig:
    def test_off_by_default_and_a_bare_port_is_loopback(self, tmp_path: Path) -> None:
        assert parse_config(BASE).dashboard is None
        config = parse_config(BASE + "dashboard: {listen: 8765}\n")
        assert config.dashboard is not None
        assert config.dashboard.listen == "127.0.0.1:8765"
        assert config.dashboard.token is None  # read-only

    def test_token_file_and_environment(self, tmp_path: Path, monkeypatch) -> None:
        (tmp_path / "token").write_text(TOKEN + "\n")
        text = BASE + "dashboard: {listen: '0.0.0.0:8765', token_file: token}\n"
        config = parse_config(text, base=tmp_path)
        assert config.dashboard.token == TOKEN
        assert TOKEN not in repr(config)  # a Secret never shows
        proxied = parse_config(BASE + "dashboard: {listen: 1, allowed_hosts: [Ingestd.Example]}")
        assert proxied.dashboard.allowed_hosts == ("ingestd.example",)
        monkeypatch.setenv("DASH_TOKEN", TOKEN)
        config = parse_config(BASE + "dashboard: {listen: 1, token: '${DASH_TOKEN}'}\n")
        assert config.dashboard.token == TOKEN

    @pytest.mark.parametrize(
        ("section", "problem"),
        [
            ("{listen: nowhere}", "dashboard.listen: expected HOST:PORT or PORT"),
            ("{listen: 1, token: short}", "dashboard.token: expected a token of at least 16"),
            ("{listen: 1, tokn: x}", "dashboard.tokn: unknown key; did you mean 'token'?"),
            ("{listen: 1, allowed_hosts: 3}", "dashboard.allowed_hosts: expected a list"),
        ],
    )
    def test_bad_values_name_the_key(self, section: str, problem: str) -> None:
        with pytest.raises(ConfigError) as caught:
            parse_config(BASE + f"dashboard: {section}\n", source="x.yaml")
        assert any(problem in p for p in caught.value.problems), caught.value.problems


class TestStoreReads:
    def test_search_filters_pages_and_counts(self, store: Store) -> None:
        ids = [add(store, f"day/{i}.wav") for i in range(7)]
        add(store, "odd_name%.wav", State.REJECTED, error="no audio stream")
        rows, total = store.search(limit=3)
        assert total == 8 and [r.id for r in rows] == [8, ids[6], ids[5]]
        rows, total = store.search(limit=3, offset=6)
        assert [r.id for r in rows] == [ids[1], ids[0]]
        assert store.search(states=["rejected"])[1] == 1
        assert store.search(text="NO AUDIO")[1] == 1  # error text, any case
        assert store.search(text="%")[1] == 1  # LIKE wildcards are literal
        assert store.search(text="_")[1] == 1
        assert store.search(watch="other")[1] == 0
        assert store.search(since=time.time() + 60)[1] == 0

    def test_reader_cannot_write(self, store: Store) -> None:
        add(store, "a.wav")
        reader = SqliteStore.read_only(store.path)
        try:
            assert reader.counts_by_state() == {"discovered": 1}
            with pytest.raises(StoreError):
                reader.update(1, attempts=3)
        finally:
            reader.close()
        assert store.get(1).attempts == 0

    def test_reader_of_a_missing_database_is_a_store_error(self, tmp_path: Path) -> None:
        with pytest.raises(StoreError):
            SqliteStore.read_only(tmp_path / "nothing.db").counts_by_state()


class TestServer:
    def test_read_only_without_a_token(self, store: Store, tmp_path: Path) -> None:
        rid = add(store, "a.wav", State.FAILED, error="boom", failed_from="queued")
        server = serve(store, tmp_path, None)
        try:
            status, _, html = request(f"{server.url}/recordings/{rid}")
            assert status == 200 and "Read-only dashboard" in html
            for headers in ({}, {"Authorization": f"Bearer {TOKEN}"}):
                status, _, body = request(
                    f"{server.url}/api/recordings/{rid}/retry", "POST", b"", **headers
                )
                assert status == 403 and "read-only" in json.loads(body)["error"]
            assert store.get(rid).state is State.FAILED
        finally:
            server.stop()

    def test_a_dismissed_recording_has_its_page(
        self, store: Store, served: DashboardServer
    ) -> None:
        """Every state has words on the page, dismissed included (its reason shown)."""
        assert set(STATE_WORDS) == set(State)
        rid = add(store, "a.wav", State.REJECTED, error="not media", failed_from="discovered")
        store.transition(rid, State.DISMISSED, error="a.wav was deleted; nothing is left")
        status, _, html = request(f"{served.url}/recordings/{rid}")
        assert status == 200, html
        assert "Dismissed (replaced, deleted" in html and "a.wav was deleted" in html

    def test_retry_with_the_token_runs_the_cli_command_and_wakes_the_daemon(
        self, store: Store, served: DashboardServer, tmp_path: Path
    ) -> None:
        rid = add(store, "a.wav", State.FAILED, tmp_path, error="boom", failed_from="queued")
        done = add(store, "b.wav", State.REJECTED, tmp_path, error="bad")
        auth = {"Authorization": f"Bearer {TOKEN}"}
        status, _, body = request(f"{served.url}/api/recordings/{rid}/retry", "POST", b"", **auth)
        assert status == 200, body
        assert "failed -> queued" in json.loads(body)["message"]
        assert store.get(rid).state is State.QUEUED
        assert served.woken  # type: ignore[attr-defined]
        # the same recording again: not failed any more
        status, _, body = request(f"{served.url}/api/recordings/{rid}/retry", "POST", b"", **auth)
        assert status == 409 and "only failed or rejected" in json.loads(body)["error"]
        status, _, _ = request(f"{served.url}/api/recordings/{done}/retry", "POST", b"", **auth)
        assert status == 200 and store.get(done).state is State.DISCOVERED

    def test_an_action_leaves_the_daemons_logging_as_it_was(
        self, store: Store, served: DashboardServer, tmp_path: Path
    ) -> None:
        """The commands run inside the daemon here: they must not switch its logs to the
        CLI's console format at warning level (info lines would vanish from the journal)."""
        import structlog

        rid = add(store, "a.wav", State.FAILED, tmp_path, error="boom", failed_from="queued")
        before = structlog.get_config()
        auth = {"Authorization": f"Bearer {TOKEN}"}
        status, _, body = request(f"{served.url}/api/recordings/{rid}/retry", "POST", b"", **auth)
        assert status == 200, body
        after = structlog.get_config()
        assert after["wrapper_class"] is before["wrapper_class"]
        assert after["processors"] == before["processors"]

    def test_origin_and_csrf_checks(
        self, store: Store, served: DashboardServer, tmp_path: Path
    ) -> None:
        rid = add(store, "a.wav", State.FAILED, tmp_path, error="boom", failed_from="queued")
        host = served.url.removeprefix("http://")
        status, headers, _ = request(
            f"{served.url}/login", "POST", f"token={TOKEN}".encode(), False, Origin=served.url
        )
        assert status == 303 and "HttpOnly" in headers["Set-Cookie"]
        assert TOKEN not in headers["Set-Cookie"]
        cookie = headers["Set-Cookie"].split(";")[0]
        form = {"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"}
        url = f"{served.url}/recordings/{rid}/retry"
        assert request(url, "POST", b"csrf=nope", **form)[0] == 403
        csrf = served.guard.csrf_value()
        evil = {**form, "Origin": "http://attacker.example"}
        assert request(url, "POST", f"csrf={csrf}".encode(), **evil)[0] == 403
        assert request(url, "POST", b"", **{**form, "Cookie": "ingestd_session=x"})[0] == 401
        assert store.get(rid).state is State.FAILED
        same = {**form, "Origin": f"http://{host}"}
        status, _, html = request(url, "POST", f"csrf={csrf}".encode(), **same)
        assert status == 200 and "re-queued" in html  # followed the redirect
        assert store.get(rid).state is State.QUEUED

    def test_dns_rebinding_and_reflected_text_are_refused(
        self, store: Store, served: DashboardServer
    ) -> None:
        status, _, html = request(f"{served.url}/api/status", Host="rebound.example:8765")
        assert status == 403 and "Host" in html
        assert request(f"{served.url}/api/status", Host=f"localhost:{served.port}")[0] == 200
        served.guard.allowed_hosts = frozenset({"ingestd.example.org"})  # a reverse proxy's name
        assert request(f"{served.url}/api/status", Host="ingestd.example.org")[0] == 200
        rid = add(store, "a.wav", State.FAILED, error="boom", failed_from="queued")
        proxied = {
            "Host": "ingestd.example.org",
            "Origin": "https://ingestd.example.org",
            "Authorization": f"Bearer {TOKEN}",
        }
        assert request(f"{served.url}/api/recordings/{rid}/retry", "POST", b"", **proxied)[0] == 200
        status, _, html = request(f"{served.url}/recordings/{rid}?done=Your+token+expired")
        assert status == 200 and "token expired" not in html and 'class="notice"' not in html

    def test_wrong_token_at_sign_in(self, served: DashboardServer) -> None:
        status, _, html = request(f"{served.url}/login", "POST", b"token=guess")
        assert status == 401 and "wrong token" in html

    def test_secrets_never_shown(self, store: Store, served: DashboardServer) -> None:
        secret = "s3cr3t-value-for-the-dashboard"
        register_secrets([secret])
        rid = add(
            store,
            "a.wav",
            State.FAILED,
            failed_from="delivering",
            error=f"POST https://hooks.slack.com/services/T000/B000/XXXXXXXX failed ({secret})",
        )
        with sqlite3.connect(store.path) as conn:  # parameters as a plugin might set them
            conn.execute(
                "UPDATE recordings SET params = ? WHERE id = ?",
                (json.dumps({"webhookUrl": "https://x", "api_token": secret}), rid),
            )
        for path in (f"/recordings/{rid}", f"/api/recordings/{rid}", "/recordings", "/"):
            status, _, body = request(served.url + path)
            assert status == 200
            assert secret not in body and "XXXXXXXX" not in body, path

    def test_limits_and_bad_input(self, store: Store, served: DashboardServer) -> None:
        assert request(f"{served.url}/recordings?q={'x' * 3000}")[0] == 414
        assert request(f"{served.url}/recordings?{'&'.join(['a=1'] * 50)}")[0] == 400
        assert request(f"{served.url}/recordings?colour=red")[0] == 400
        assert request(f"{served.url}/recordings?q={'x' * 201}")[0] == 400
        big = b"x" * 20_000
        assert request(f"{served.url}/login", "POST", big)[0] == 413
        status, headers, _ = request(f"{served.url}/api/nothing")
        assert status == 404 and headers["Content-Type"] == "application/json"
        assert request(f"{served.url}/static/../../etc/passwd")[0] == 404
        assert request(f"{served.url}/recordings/1/files/0")[0] == 404

    def test_a_stalled_client_does_not_stall_others(self, served: DashboardServer) -> None:
        import socket

        stalled = socket.create_connection((served.host, served.port))
        stalled.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # never finishes its request
        try:
            started = time.monotonic()
            assert request(f"{served.url}/api/status")[0] == 200
            assert time.monotonic() - started < 2
        finally:
            stalled.close()

    def test_queue_says_what_each_waits_for_and_shows_upload_progress(
        self, store: Store, tmp_path: Path
    ) -> None:
        chain = (State.PROBED, State.TRANSCODED, State.QUEUED, State.SUBMITTING)
        for name in ("a.wav", "b.wav"):
            rid = add(store, name)
            for state in chain:
                store.transition(rid, state)
            store.transition(rid, State.SUBMITTED, job_id=f"job-{name}")
        queued = add(store, "c.wav")
        uploading = add(store, "d.wav")
        for state in chain[:3]:
            store.transition(queued, state)
        for state in chain:
            store.transition(uploading, state)
        path = str(store.get(uploading).path)
        transcoding = add(store, "e.wav")
        store.transition(transcoding, State.PROBED, media={"duration_seconds": 60.0})
        source = str(store.get(transcoding).path)
        server = DashboardServer(
            "127.0.0.1:0",
            store.reader,
            live=lambda: Live(
                started_at=time.time(),
                version="t",
                job_limit=3,
                uploads={path: (512 * 1024, 2048 * 1024)},
                transcodes={source: 15.0},
            ),
            actions=Actions(None, lambda: None),
            guard=Guard(None),
        )
        server.start()
        try:
            status, _, body = request(f"{server.url}/api/queue")
            assert status == 200, body
            queue = {r["id"]: r for r in json.loads(body)["queue"]}
            assert queue[queued]["waits_for"] == "a job slot (3 of 3 in use)"
            assert queue[1]["waits_for"] == "the Symbl job job-a.wav to complete"
            assert queue[uploading]["upload"] == {
                "sent_bytes": 512 * 1024,
                "size_bytes": 2048 * 1024,
            }
            assert queue[transcoding]["transcode"] == {
                "done_seconds": 15.0,
                "duration_seconds": 60.0,
            }
            _, _, html = request(f"{server.url}/queue")
            assert "512 KB of 2.0 MB" in html.replace("512.0 KB", "512 KB")
            assert "15 s of 1 min 0 s of the media transcoded" in html
        finally:
            server.stop()

    def test_a_taken_port_is_one_clear_error(self, store: Store, served: DashboardServer) -> None:
        second = DashboardServer(
            f"127.0.0.1:{served.port}",
            store.reader,
            live=lambda: Live(started_at=time.time(), version="t", job_limit=1),
            actions=Actions(None, lambda: None),
            guard=Guard(None),
        )
        with pytest.raises(IngestdError, match=r"dashboard.listen .*: cannot listen"):
            second.start()

    def test_last_hour_counts_come_from_samples(self, store: Store, tmp_path: Path) -> None:
        totals = [5.0, 2.0]
        server = DashboardServer(
            "127.0.0.1:0",
            store.reader,
            live=lambda: Live(started_at=time.time(), version="t", job_limit=1),
            actions=Actions(None, lambda: None),
            guard=Guard(None),
            counters=lambda: (totals[0], totals[1]),
        )
        now = time.monotonic()
        server.sample_counters(now - 4000)  # too old: dropped
        server.sample_counters(now - 3000)
        totals[:] = [12.0, 9.0]
        assert server.last_hour() == (7, 7)
