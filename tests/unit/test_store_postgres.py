"""What only the PostgreSQL store has: its schema migration by several nodes at once, a lost
connection waited for, its readers, and ``state.url`` in the configuration. The behaviour it
shares with SQLite is the contract suite (the `store` fixture, tests/stores.py)."""

from __future__ import annotations

import secrets
import socket
import subprocess
import threading
from pathlib import Path

import psycopg
import pytest

from ingestd.configload import load_config
from ingestd.errors import ConfigError, StoreError
from ingestd.lifecycle import State
from ingestd.store import Store, open_store
from ingestd.store.base import NodeInfo
from ingestd.store.postgres import SCHEMA_VERSION, PostgresStore, display_url
from tests.unit.test_store_protocol import public_methods


def add(store: Store, rel: str):
    return store.insert(
        watch="w", watch_root="/in", relpath=rel, size_bytes=1, mtime=1.0, sha256=rel
    )


def test_every_protocol_method_is_there_and_survives_a_reconnect() -> None:
    methods = set(public_methods(Store))
    for name in methods - {"close", "reader"}:
        assert getattr(PostgresStore, name).__wrapped__, name


def test_nodes_starting_together_migrate_once(postgres_database: str) -> None:
    opened: list[Store] = []
    failures: list[BaseException] = []

    def start() -> None:
        try:
            opened.append(open_store(postgres_database))
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=start) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    with psycopg.connect(postgres_database) as conn:
        assert conn.execute("SELECT version FROM ingestd_schema").fetchall() == [(SCHEMA_VERSION,)]
    add(opened[0], "a.wav")
    assert [r.relpath for r in opened[-1].all()] == ["a.wav"]
    for store in opened:
        store.close()


def test_a_newer_schema_is_refused(postgres_database: str) -> None:
    open_store(postgres_database).close()
    with psycopg.connect(postgres_database, autocommit=True) as conn:
        conn.execute("UPDATE ingestd_schema SET version = 99")
    with pytest.raises(StoreError, match="newer ingestd"):
        open_store(postgres_database)


def terminate_other_sessions(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


def test_the_daemons_store_reconnects_and_runs_the_call_again(postgres_database: str) -> None:
    store = PostgresStore(postgres_database, wait=True)
    row = add(store, "a.wav")
    terminate_other_sessions(postgres_database)  # a server restart, as the store sees it
    assert store.transition(row.id, State.PROBED).state is State.PROBED
    assert [e["new"] for e in store.events(row.id)] == ["discovered", "probed"]
    store.close()


def test_a_commands_store_fails_at_once_with_one_line(postgres_database: str) -> None:
    store = open_store(postgres_database)
    add(store, "a.wav")
    terminate_other_sessions(postgres_database)
    with pytest.raises(StoreError, match="lost the connection") as caught:
        store.all()
    assert caught.value.transient
    with pytest.raises(StoreError, match="lost the connection"):  # and again, not a crash
        store.all()
    store.close()


def test_a_reader_reads_and_refuses_to_write(postgres_database: str) -> None:
    store = open_store(postgres_database)
    row = add(store, "a.wav")
    reader = store.reader()
    try:
        assert reader.get(row.id).state is State.DISCOVERED
        assert reader.snapshot().states == {"discovered": 1}
        with pytest.raises(StoreError, match="only reads"):
            reader.update(row.id, attempts=3)
    finally:
        reader.close()
        store.close()


def test_unreachable_server_is_one_line_for_a_command() -> None:
    with pytest.raises(StoreError, match="cannot reach the state database") as caught:
        open_store("postgresql://postgres@127.0.0.1:1/ingestd")
    assert "Traceback" not in str(caught.value)


def test_a_missing_database_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match='database "ingestd_none_here" does not exist'):
        open_store("postgresql://postgres@127.0.0.1:5432/ingestd_none_here")


class TestConfig:
    def write(self, tmp_path: Path, state: str) -> Path:
        (tmp_path / "in").mkdir(exist_ok=True)
        path = tmp_path / "ingestd.yaml"
        path.write_text(
            f"symbl: {{app_id: a, app_secret: b}}\nstate:\n{state}\nwatch:\n  - path: in\n"
        )
        return path

    def test_url_and_password_file(self, tmp_path: Path) -> None:
        (tmp_path / "pw").write_text("hunter22\n")
        config = load_config(
            self.write(tmp_path, "  url: postgres://ingestd@db:5433/state\n  password_file: pw")
        )
        assert config.state_url == "postgres://ingestd@db:5433/state"
        assert config.state_password == "hunter22"
        assert config.state_path is None
        assert config.work_dir == tmp_path / "state" / "work"
        assert "hunter22" not in repr(config)

    def test_a_url_without_database_is_refused(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match="no database given"):
            load_config(self.write(tmp_path, "  url: postgresql://u@db"))

    def test_node_name_defaults_to_the_host_name(self, tmp_path: Path) -> None:
        config = load_config(self.write(tmp_path, "  url: sqlite:///s.db"))
        assert config.node_name == socket.gethostname()
        path = self.write(tmp_path, "  url: sqlite:///s.db")
        path.write_text(path.read_text() + "node: {name: 'bad name'}\n")
        with pytest.raises(ConfigError, match=r"node\.name: expected"):
            load_config(path)

    def test_a_password_for_sqlite_is_refused(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match=r"only a postgresql:// state\.url"):
            load_config(self.write(tmp_path, "  url: sqlite:///s.db\n  password: x"))


def test_messages_never_show_the_password() -> None:
    assert display_url("postgresql://u:pw@h:1/d") == "postgresql://u:***@h:1/d"
    assert display_url("postgresql://u@h/d") == "postgresql://u@h/d"


class TestNodes:
    """``node.name``: one live daemon per name on a database (issue 12)."""

    @staticmethod
    def node(name: str = "rec-1", pid: int | None = None, host: str = "this-host") -> NodeInfo:
        return NodeInfo(name=name, instance=secrets.token_hex(4), host=host, pid=pid or 1)

    def test_a_second_live_node_with_the_same_name_is_refused(self, postgres_database) -> None:
        store = open_store(postgres_database)
        first = self.node(host="other-host", pid=4242)
        store.join_node(first, stale_after=30)
        with pytest.raises(StoreError, match=r"another ingestd runs as node 'rec-1'.*other-host"):
            store.join_node(self.node(), stale_after=30)
        store.join_node(self.node("rec-2"), stale_after=30)  # another name is welcome
        assert [n["name"] for n in store.nodes()] == ["rec-1", "rec-2"]
        assert store.node_heartbeat(first)
        store.leave_node(first)
        store.join_node(self.node(), stale_after=30)  # left cleanly: free at once
        store.close()

    def test_a_silent_node_loses_its_name_and_learns_it(self, postgres_database) -> None:
        store = open_store(postgres_database)
        old = self.node(host="other-host")
        store.join_node(old, stale_after=30)
        with psycopg.connect(postgres_database, autocommit=True) as conn:
            conn.execute("UPDATE nodes SET heartbeat_at = heartbeat_at - 31")
        store.join_node(self.node(), stale_after=30)
        assert store.node_heartbeat(old) is False
        store.close()

    def test_a_dead_process_of_this_host_frees_its_name_at_once(self, postgres_database) -> None:
        """A SIGKILLed daemon restarted at once on the same host is not kept waiting."""
        dead = subprocess.Popen(["true"])
        dead.wait()
        store = open_store(postgres_database)
        store.join_node(self.node(pid=dead.pid, host=socket.gethostname()), stale_after=30)
        store.join_node(self.node(host=socket.gethostname()), stale_after=30)
        store.close()


def test_sqlite_records_no_nodes(tmp_path: Path) -> None:
    """One daemon per SQLite file (its lock): node methods do nothing there."""
    store = open_store(tmp_path / "state.db")
    node = TestNodes.node()
    store.join_node(node, stale_after=30)
    store.join_node(TestNodes.node(), stale_after=30)
    assert store.node_heartbeat(node) and store.nodes() == []
    store.leave_node(node)


class TestLostAnswers:
    """The server going away around a COMMIT: the write happens exactly once. The loss is
    a real backend termination, injected at the moment under test."""

    @staticmethod
    def cut(store: PostgresStore, postgres_database: str, *, when: str) -> list[str]:
        """Terminate the store's backend at its next COMMIT: ``before`` it runs, once it ran
        but before its ``answer`` arrives, or right ``after`` it was answered."""
        conn = store._conn
        original = conn._run
        fired: list[str] = []

        def run(sql, args):
            if sql != "COMMIT" or fired:
                return original(sql, args)
            fired.append(when)
            pid = conn._conn.info.backend_pid
            done = original(sql, args) if when in ("answer", "after") else None
            with psycopg.connect(postgres_database, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            if when == "after":  # committed and answered; the next statement finds it gone
                return done
            return original(sql, args)  # "answer": COMMIT again on a dead connection

        conn._run = run  # type: ignore[method-assign]
        return fired

    def test_connection_lost_after_the_commit_is_not_a_second_transition(
        self, postgres_database: str
    ) -> None:
        store = PostgresStore(postgres_database, wait=True)
        row = add(store, "a.wav")
        fired = self.cut(store, postgres_database, when="after")
        moved = store.transition(row.id, State.PROBED, expected=State.DISCOVERED)
        assert fired == ["after"]
        assert moved.state is State.PROBED
        assert [e["new"] for e in store.events(row.id)] == ["discovered", "probed"]
        store.close()

    def test_a_lost_commit_answer_is_looked_up_not_written_again(
        self, postgres_database: str
    ) -> None:
        store = PostgresStore(postgres_database, wait=True)
        row = add(store, "a.wav")
        fired = self.cut(store, postgres_database, when="answer")
        moved = store.transition(row.id, State.PROBED, expected=State.DISCOVERED)
        assert fired == ["answer"]
        assert moved.state is State.PROBED
        assert [e["new"] for e in store.events(row.id)] == ["discovered", "probed"]
        store.close()

    def test_connection_lost_before_the_commit_runs_the_write_again(
        self, postgres_database: str
    ) -> None:
        store = PostgresStore(postgres_database, wait=True)
        row = add(store, "a.wav")
        fired = self.cut(store, postgres_database, when="before")
        moved = store.transition(row.id, State.PROBED, expected=State.DISCOVERED)
        assert fired == ["before"]
        assert moved.state is State.PROBED
        assert [e["new"] for e in store.events(row.id)] == ["discovered", "probed"]
        store.close()

    def test_a_lost_insert_answer_records_the_file_once(self, postgres_database: str) -> None:
        store = PostgresStore(postgres_database, wait=True)
        self.cut(store, postgres_database, when="answer")
        add(store, "a.wav")
        assert [r.relpath for r in store.all()] == ["a.wav"]
        store.close()
