"""Operating several nodes on one PostgreSQL state database (issue 12): ``ingestd drain`` and
``undrain``, the drain flag across restarts, the nodes and claim holders in ``ingestd
status`` and the metrics. Real PostgreSQL (a database per test), the real CLI as a
subprocess, the real daemon where a restart is the point."""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import yaml
from structlog.testing import capture_logs

from ingestd.configload import load_config
from ingestd.lifecycle import State
from ingestd.metrics import Health, MetricsServer
from ingestd.nodes import LEASE_SECONDS, Membership, holders, node_rows
from ingestd.store import Store, open_store
from ingestd.store.base import NodeInfo
from ingestd.testing import IngestdEnv, run_cli, wait_for
from tests.ops.test_metrics import advance, scrape, value


def node(name: str, host: str = "host-a", pid: int = 1) -> NodeInfo:
    return NodeInfo(name=name, instance=secrets.token_hex(4), host=host, pid=pid)


def claim(url: str, recording_id: int, holder: str, epoch: int, expires_at: float) -> None:
    """A claims row as the dispatcher writes it (``ingestd.store.claims``)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO claims (recording_id, node, epoch, expires_at) VALUES (%s, %s, %s, %s)",
            (recording_id, holder, epoch, expires_at),
        )


def add(store: Store, relpath: str, state: State = State.DISCOVERED) -> int:
    row = store.insert(
        watch="inbox",
        watch_root="/srv/in",
        relpath=relpath,
        size_bytes=1,
        mtime=1.0,
        sha256=relpath,
    )
    if state is not State.DISCOVERED:
        advance(store, row.id, state)
    return row.id


@pytest.fixture
def pg(postgres_database: str) -> Iterator[Store]:
    store = open_store(postgres_database)
    try:
        yield store
    finally:
        store.close()


def on_postgres(env: IngestdEnv, url: str, name: str = "recorder-1") -> None:
    env.state_db = url  # type: ignore[assignment]  # IngestdEnv.rows opens it read-only
    env.write_config(state={"url": url, "work_dir": str(env.root / "work")}, node={"name": name})


class TestStore:
    def test_drain_outlives_a_clean_stop_and_a_restart(self, pg: Store) -> None:
        """The flag is the name's: kept when the node stops cleanly (listed as stopped) and
        when it joins again; undrain clears it, and the next clean stop forgets the node."""
        first = node("rec-1", pid=11)
        pg.join_node(first, stale_after=30)
        assert pg.set_draining("rec-1", True) is True
        pg.leave_node(first)
        [row] = pg.nodes()
        assert (row["name"], row["pid"], row["draining"]) == ("rec-1", None, True)
        again = node("rec-1", pid=12)
        pg.join_node(again, stale_after=30)  # a stopped node's name is free at once
        [row] = pg.nodes()
        assert (row["pid"], row["draining"]) == (12, True)
        assert pg.set_draining("rec-1", False) is True
        assert pg.nodes()[0]["draining"] is False
        pg.leave_node(again)
        assert pg.nodes() == []

    def test_undrain_forgets_a_stopped_node_and_unknown_names_are_false(self, pg: Store) -> None:
        gone = node("rec-2")
        pg.join_node(gone, stale_after=30)
        pg.set_draining("rec-2", True)
        pg.leave_node(gone)
        assert pg.set_draining("nobody", True) is False
        assert pg.set_draining("rec-2", False) is True
        assert pg.nodes() == []
        assert pg.set_draining("rec-2", False) is False

    def test_claims_and_who_holds_what(self, pg: Store, postgres_database: str) -> None:
        """Held, run out (its node died) and let go (it waits): only held ones count as a
        node's claims; the time left is the database server's (leases run on its clock)."""
        now = time.time()
        pg.join_node(node("rec-1"), stale_after=30)
        pg.join_node(node("rec-2", host="host-b"), stale_after=30)
        claim(postgres_database, 7, "rec-1", 3, now + 30)
        claim(postgres_database, 8, "rec-1", 4, now + 30)
        claim(postgres_database, 9, "rec-2", 1, now - 5)  # run out: not held any more
        claim(postgres_database, 10, "rec-2", 2, 0.0)  # let go (store/claims.py RELEASED)
        claims = pg.claims()
        assert {rid: (c["node"], c["epoch"]) for rid, c in claims.items()} == {
            7: ("rec-1", 3),
            8: ("rec-1", 4),
            9: ("rec-2", 1),
            10: ("rec-2", 2),
        }
        assert claims[7]["expires_at"] == pytest.approx(now + 30)
        assert 25 < claims[7]["expires_in_seconds"] <= 30
        assert -10 < claims[9]["expires_in_seconds"] <= -5
        rows = {r["name"]: r for r in node_rows(pg.nodes(), claims, now)}
        assert {n: (r["state"], r["claims"]) for n, r in rows.items()} == {
            "rec-1": ("live", 2),
            "rec-2": ("live", 0),
        }
        states = {rid: c["state"] for rid, c in holders(claims).items()}
        assert states == {7: "held", 8: "held", 9: "expired", 10: "released"}
        reader = pg.reader()
        snapshot = reader.snapshot()
        reader.close()
        assert [n["name"] for n in snapshot.nodes] == ["rec-1", "rec-2"]
        assert set(snapshot.claims) == {7, 8, 9, 10}

    def test_a_claim_taken_through_the_store_shows_until_let_go(self, pg: Store) -> None:
        """The dispatcher's own calls (`Store.claim`, `release`): held, then let go."""
        pg.join_node(node("rec-1"), stale_after=30)
        rid = add(pg, "a.wav")
        assert pg.claim(rid, "rec-1", 30) is not None
        assert holders(pg.claims())[rid]["state"] == "held"
        assert node_rows(pg.nodes(), pg.claims(), time.time())[0]["claims"] == 1
        pg.release(rid)
        assert holders(pg.claims())[rid]["state"] == "released"
        assert node_rows(pg.nodes(), pg.claims(), time.time())[0]["claims"] == 0

    def test_sqlite_has_no_nodes_to_drain_and_no_claims(self, tmp_path: Path) -> None:
        store = open_store(tmp_path / "state.db")
        assert store.set_draining("anything", True) is False
        assert store.claims() == {}
        assert store.snapshot().nodes == () and store.snapshot().claims == {}
        store.close()

    def test_node_states(self) -> None:
        """live while heard within the lease, stale after it, stopped when kept for its flag."""
        now = 1000.0
        base = {"host": "h", "started_at": 0.0, "draining": False}
        nodes = [
            {**base, "name": "a", "pid": 1, "heartbeat_at": now - 2},
            {**base, "name": "b", "pid": 2, "heartbeat_at": now - LEASE_SECONDS - 1},
            {**base, "name": "c", "pid": None, "heartbeat_at": now - 600, "draining": True},
        ]
        rows = node_rows(nodes, {}, now)
        assert [(r["name"], r["state"], r["heartbeat_age_seconds"]) for r in rows] == [
            ("a", "live", 2.0),
            ("b", "stale", LEASE_SECONDS + 1),
            ("c", "stopped", 600.0),
        ]


class TestMembership:
    def test_draining_is_read_at_join_and_each_heartbeat_and_logged_once(self, pg: Store) -> None:
        """A node drained before its start knows it at once; a flip is logged once."""
        earlier = node("rec-1")
        pg.join_node(earlier, stale_after=30)
        pg.set_draining("rec-1", True)
        pg.leave_node(earlier)
        membership = Membership(pg, "rec-1")
        with capture_logs() as logs:
            membership.join()
            assert membership.draining is True
            membership.refresh_draining()
            pg.set_draining("rec-1", False)
            membership.refresh_draining()
            assert membership.draining is False
            membership.refresh_draining()
            pg.set_draining("rec-1", True)
            membership.refresh_draining()
        assert [e["event"] for e in logs if e["event"].startswith("node_")] == [
            "node_draining",
            "node_undrained",
            "node_draining",
        ]
        assert "ingestd undrain rec-1" in logs[0]["action"]
        membership.leave()

    def test_a_fresh_node_is_not_draining(self, pg: Store) -> None:
        membership = Membership(pg, "rec-9")
        with capture_logs() as logs:
            membership.join()
        assert membership.draining is False and logs == []
        membership.leave()


class TestCommands:
    def test_on_sqlite_drain_says_what_to_do_instead(self, ingestd_env) -> None:
        ingestd_env.write_config()
        for command in ("drain", "undrain"):
            result = run_cli(ingestd_env, command)
            assert result.returncode == 1, result.stderr
            [line] = result.stderr.splitlines()
            assert line.startswith(f"ingestd: {command}: this config's state is SQLite")
            assert "stop it: a stop is graceful" in line

    def test_drain_status_and_undrain(self, ingestd_env, pg: Store, postgres_database) -> None:
        """Drain another node by name and this config's node by default; status shows the
        nodes, their claims and who holds each recording; undrain; an unknown node is exit 1."""
        env = ingestd_env
        on_postgres(env, postgres_database, name="recorder-1")
        now = time.time()
        pg.join_node(node("recorder-1", host="box-a", pid=101), stale_after=30)
        pg.join_node(node("recorder-2", host="box-b", pid=202), stale_after=30)
        held = add(pg, "held.wav", State.QUEUED)
        lost = add(pg, "lost.wav", State.PROBED)
        waiting = add(pg, "waiting.wav", State.QUEUED)
        claim(postgres_database, held, "recorder-2", 5, now + 30)
        claim(postgres_database, lost, "recorder-1", 2, now - 1)
        claim(postgres_database, waiting, "recorder-1", 1, 0.0)  # let go: waits for a slot

        unknown = run_cli(env, "drain", "recorder-9")
        assert unknown.returncode == 1
        assert unknown.stderr.strip() == (
            f"ingestd: no node 'recorder-9' on {postgres_database} (nodes: recorder-1, "
            f"recorder-2); a node is listed from its daemon's start on this database until "
            f"it stops"
        )
        drained = run_cli(env, "drain", "recorder-2")
        assert drained.returncode == 0, drained.stderr
        assert drained.stdout.startswith(
            "node recorder-2: draining: it finishes the 1 recording it holds and claims "
            "nothing new, also after a restart, until `ingestd undrain recorder-2`"
        )
        again = run_cli(env, "drain", "recorder-2")
        assert again.stdout == "node recorder-2: already draining; it holds 1 recording\n"
        mine = run_cli(env, "drain")  # node.name of this config
        assert mine.stdout.startswith("node recorder-1: draining"), mine.stderr

        status = run_cli(env, "status")
        assert status.returncode == 0, status.stderr
        lines = status.stdout.splitlines()
        assert lines[0].split() == ["node", "host", "pid", "heartbeat", "state", "claims"]
        fields = [line.split() for line in lines[1:3]]
        assert [f[:3] + f[4:] for f in fields] == [
            ["recorder-1", "box-a", "101", "s", "ago", "live", "0", "draining"],
            ["recorder-2", "box-b", "202", "s", "ago", "live", "1", "draining"],
        ]
        assert all(0 <= int(f[3]) < 30 for f in fields), lines  # heartbeat age in seconds
        assert "inbox/held.wav [node recorder-2]" in status.stdout
        assert (
            "inbox/lost.wav [the lease of node recorder-1 ran out: the next node takes it over]"
            in status.stdout
        )
        assert "inbox/waiting.wav\n" in status.stdout  # nobody drives it now

        as_json = json.loads(run_cli(env, "status", "--json").stdout)
        nodes = {n["name"]: n for n in as_json["nodes"]}
        assert {n: (r["state"], r["draining"], r["claims"]) for n, r in nodes.items()} == {
            "recorder-1": ("live", True, 0),
            "recorder-2": ("live", True, 1),
        }
        claims = {r["path"]: r["claim"] for r in as_json["in_progress"]}
        assert claims["held.wav"] == {
            "node": "recorder-2",
            "epoch": 5,
            "expires_at": pytest.approx(now + 30),
            "expires_in_seconds": pytest.approx(30, abs=15),
            "state": "held",
        }
        assert (claims["lost.wav"]["state"], claims["waiting.wav"]["state"]) == (
            "expired",
            "released",
        )

        undrained = run_cli(env, "undrain", "recorder-2")
        assert undrained.stdout == (
            "node recorder-2: takes new work again (within 5 s, at its next heartbeat)\n"
        )
        assert run_cli(env, "undrain", "recorder-2").stdout == (
            "node recorder-2: was not draining; nothing changed\n"
        )
        assert [n["draining"] for n in pg.nodes()] == [True, False]

    def test_status_on_postgres_says_when_no_node_runs(self, ingestd_env, postgres_database):
        on_postgres(ingestd_env, postgres_database)
        status = run_cli(ingestd_env, "status")
        assert status.returncode == 0, status.stderr
        assert status.stdout.startswith(f"nodes: none running on {postgres_database}\n")

    def test_a_drained_daemon_stays_drained_across_its_restart(
        self, ingestd_env, postgres_database
    ) -> None:
        """The running daemon hears the drain at its next heartbeat; stopped cleanly it is
        listed as stopped and drained; started again it is drained from its first moment,
        until undrain, which it hears at its next heartbeat."""
        env = ingestd_env
        on_postgres(env, postgres_database, name="recorder-1")
        daemon = env.daemon().start()
        daemon.wait_ready()
        assert run_cli(env, "drain").returncode == 0
        wait_for(lambda: daemon.has_event("node_draining"), 15, "node_draining at a heartbeat")
        assert daemon.stop() == 0
        stopped = json.loads(run_cli(env, "status", "--json").stdout)["nodes"]
        assert [(n["name"], n["state"], n["pid"], n["draining"]) for n in stopped] == [
            ("recorder-1", "stopped", None, True)
        ]

        restarted = env.daemon().start()
        restarted.wait_ready()
        assert restarted.has_event("node_draining", node="recorder-1"), "drained from its start"
        status = run_cli(env, "status")
        assert "live" in status.stdout and "draining" in status.stdout, status.stdout
        undrain = run_cli(env, "undrain")
        assert undrain.stdout.startswith("node recorder-1: takes new work again"), undrain.stderr
        wait_for(lambda: restarted.has_event("node_undrained"), 15, "node_undrained")
        assert restarted.stop() == 0
        after = json.loads(run_cli(env, "status", "--json").stdout)
        assert after["nodes"] == [], "a node that is not drained is forgotten at a clean stop"


def test_metrics_per_node(pg: Store, postgres_database: str) -> None:
    """Heartbeat age, unexpired claims held and the drain flag, one series per node."""
    now = time.time()
    pg.join_node(node("rec-1"), stale_after=30)
    pg.join_node(node("rec-2"), stale_after=30)
    pg.set_draining("rec-2", True)
    claim(postgres_database, 1, "rec-1", 1, now + 30)
    claim(postgres_database, 2, "rec-1", 2, now + 30)
    claim(postgres_database, 3, "rec-2", 1, now - 1)
    with psycopg.connect(postgres_database, autocommit=True) as conn:
        conn.execute("UPDATE nodes SET heartbeat_at = heartbeat_at - 40 WHERE name = 'rec-2'")
    server = MetricsServer("127.0.0.1:0", pg, health=Health(30), max_concurrent_jobs=5)
    server.start()
    try:
        samples = scrape(server.url)
    finally:
        server.stop()
    assert value(samples, "ingestd_node_claims", node="rec-1") == 2
    assert value(samples, "ingestd_node_claims", node="rec-2") == 0
    assert value(samples, "ingestd_node_draining", node="rec-1") == 0
    assert value(samples, "ingestd_node_draining", node="rec-2") == 1
    assert value(samples, "ingestd_node_heartbeat_age_seconds", node="rec-1") < 5
    assert 40 <= value(samples, "ingestd_node_heartbeat_age_seconds", node="rec-2") < 50


def test_metrics_on_sqlite_have_no_node_series(tmp_path: Path) -> None:
    store = open_store(tmp_path / "state.db")
    server = MetricsServer("127.0.0.1:0", store, health=Health(30), max_concurrent_jobs=5)
    server.start()
    try:
        samples = scrape(server.url)
    finally:
        server.stop()
        store.close()
    assert not [name for name, _ in samples if name.startswith("ingestd_node_")]
    assert value(samples, "ingestd_store_up") == 1


def test_the_readmes_two_node_config_loads(tmp_path: Path, monkeypatch) -> None:
    """The README's two-node YAML is a valid config (its files and folders made local)."""
    text = (Path(__file__).parents[2] / "README.md").read_text()
    start = text.index("### Running several nodes\n")
    section = text[start : text.index("\n### ", start + 1)]
    [block] = re.findall(r"```yaml\n(.*?)```", section, re.DOTALL)
    data = yaml.safe_load(block)
    secret = tmp_path / "secret"
    secret.write_text("s3cret")
    data["symbl"]["app_secret_file"] = data["state"]["password_file"] = str(secret)
    data["state"]["work_dir"] = str(tmp_path / "work")
    data["watch"][0]["path"] = str(tmp_path)
    data["sinks"][0]["path"] = str(tmp_path / "results")
    monkeypatch.setenv("SYMBL_APP_ID", "app")
    path = tmp_path / "ingestd.yaml"
    path.write_text(yaml.safe_dump(data))
    config = load_config(path)
    assert (config.node_name, config.node_heartbeat_seconds, config.node_lease_seconds) == (
        "recorder-1",
        5,
        30,
    )
    assert config.state_url.startswith("postgresql://")
