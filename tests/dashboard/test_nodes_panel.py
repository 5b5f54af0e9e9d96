"""The nodes of a shared PostgreSQL store on the dashboard: ``/api/status`` and the queue's
JSON say who holds what, and the overview page has a Nodes panel (in headless Chromium).
The real server on a real PostgreSQL database; the daemon's `Live` view is fixed."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator

import psycopg
import pytest
from playwright.sync_api import expect

from ingestd.dashboard import DashboardServer, Live
from ingestd.dashboard.actions import Actions
from ingestd.dashboard.auth import Guard
from ingestd.lifecycle import State
from ingestd.store import Store, open_store
from ingestd.store.base import NodeInfo
from tests.dashboard.test_server import request
from tests.ops.test_nodes import add, claim


@pytest.fixture
def two_nodes(postgres_database: str, tmp_path) -> Iterator[tuple[DashboardServer, Store, dict]]:
    """recorder-1 (this node) holds a submitted and a probed recording; recorder-2 is
    drained and silent for a minute (stale), its claim on a discovered recording run out."""
    store = open_store(postgres_database)
    now = time.time()
    store.join_node(NodeInfo("recorder-1", secrets.token_hex(4), "box-a", 101), 30)
    store.join_node(NodeInfo("recorder-2", secrets.token_hex(4), "box-b", 202), 30)
    store.set_draining("recorder-2", True)
    ids = {
        "held": add(store, "held.wav", State.SUBMITTED),
        "lost": add(store, "lost.wav"),
        "prep": add(store, "prep.wav", State.PROBED),
    }
    claim(postgres_database, ids["held"], "recorder-1", 7, now + 30)
    claim(postgres_database, ids["prep"], "recorder-1", 1, now + 30)
    claim(postgres_database, ids["lost"], "recorder-2", 3, now - 30)
    with psycopg.connect(postgres_database, autocommit=True) as conn:
        conn.execute("UPDATE nodes SET heartbeat_at = heartbeat_at - 60 WHERE name = 'recorder-2'")
    server = DashboardServer(
        "127.0.0.1:0",
        store.reader,
        live=lambda: Live(started_at=now, version="test", job_limit=5, node="recorder-1"),
        actions=Actions(tmp_path / "unused.yaml", lambda: None),
        guard=Guard(None),
    )
    server.start()
    try:
        yield server, store, ids
    finally:
        server.stop()
        store.close()


def test_status_and_queue_json_name_the_nodes_and_holders(two_nodes) -> None:
    server, _, ids = two_nodes
    status, _, body = request(f"{server.url}/api/status")
    assert status == 200, body
    data = json.loads(body)
    nodes = {n["name"]: n for n in data["nodes"]}
    assert {
        name: (n["state"], n["draining"], n["claims"], n["this"], n["host"])
        for name, n in nodes.items()
    } == {
        "recorder-1": ("live", False, 2, True, "box-a"),
        "recorder-2": ("stale", True, 0, False, "box-b"),
    }
    assert 60 <= nodes["recorder-2"]["heartbeat_age_seconds"] < 90
    assert [(c["recording_id"], c["node"], c["epoch"], c["state"]) for c in data["claims"]] == [
        (ids["held"], "recorder-1", 7, "held"),
        (ids["lost"], "recorder-2", 3, "expired"),
        (ids["prep"], "recorder-1", 1, "held"),
    ]
    _, _, body = request(f"{server.url}/api/queue")
    queue = {item["path"]: item for item in json.loads(body)["queue"]}
    assert queue["held.wav"]["claim"]["node"] == "recorder-1"
    assert queue["held.wav"]["claim"]["state"] == "held"
    assert queue["lost.wav"]["claim"]["state"] == "expired"
    # a node holds it, so its transcode runs (there): not "a free worker"
    assert queue["prep.wav"]["waits_for"] == "the transcode (ffmpeg)"
    assert queue["lost.wav"]["waits_for"] == "a free probe/transcode worker"


def test_overview_has_a_nodes_panel(two_nodes, page, screenshot) -> None:
    """One row per node: this node marked, live/stale coloured, draining flagged, claims."""
    server, _, _ = two_nodes
    page.goto(server.url + "/")
    table = page.locator("table.nodes")
    expect(table.locator("tr[data-node=recorder-1]")).to_contain_text("(this node)")
    expect(table.locator("tr[data-node=recorder-1] .node-live")).to_have_text("live")
    expect(table.locator("tr[data-node=recorder-1] td.num")).to_have_text("2")
    stale = table.locator("tr[data-node=recorder-2]")
    expect(stale.locator(".node-stale")).to_have_text("stale")
    expect(stale.locator(".node-draining")).to_have_text("draining")
    expect(stale).to_contain_text("1 min")  # heard a minute ago
    live, stale_colour = (
        table.locator(f".node-{s}").evaluate("e => getComputedStyle(e).color")
        for s in ("live", "stale")
    )
    assert live != stale_colour
    screenshot(page, "nodes")
    page.goto(server.url + "/queue")
    expect(page.locator("tr", has_text="held.wav")).to_contain_text("on recorder-1")
    expect(page.locator("tr", has_text="lost.wav")).to_contain_text("lease of recorder-2 ran out")


def test_on_sqlite_there_is_no_nodes_panel(tmp_path) -> None:
    """One daemon, one store: empty lists in the JSON and no panel on the page."""
    store = open_store(tmp_path / "state.db")
    server = DashboardServer(
        "127.0.0.1:0",
        store.reader,
        live=lambda: Live(started_at=time.time(), version="test", job_limit=5, node="box"),
        actions=Actions(tmp_path / "unused.yaml", lambda: None),
        guard=Guard(None),
    )
    server.start()
    try:
        _, _, body = request(f"{server.url}/api/status")
        data = json.loads(body)
        assert (data["nodes"], data["claims"]) == ([], [])
        _, _, html = request(f"{server.url}/")
        assert "Nodes" not in html and 'table class="nodes"' not in html
    finally:
        server.stop()
        store.close()
