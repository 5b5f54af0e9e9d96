"""The daemon with its state on PostgreSQL (``state.url: postgresql://...``), end to end: a
SIGKILL mid-run, the commands, a server stopped and started under a running daemon, and the
start-up refusals (exit 78). Counted at the sandbox."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from ingestd.testing import DaemonProcess, IngestdEnv, drop, run_cli, wait_for
from tests.ops.test_notify import notify_socket  # noqa: F401 - a fixture
from tests.privatepg import PASSWORD, private_postgres  # noqa: F401 - a fixture

from .support import created, created_by_sha, log_tail, sha256, wait_terminal

MEETING = ("meeting/part1.wav", "meeting/part2.wav")
SHARED_LIMIT = {"job_seconds": 0.5, "schedule_seconds": 0.05, "concurrency_limit": 2}
SLOW_JOBS = {"job_seconds": 6, "schedule_seconds": 0.05, "concurrency_limit": 5}


def on_postgres(env: IngestdEnv, url: str, **config) -> None:
    """Point `env` (config and its row reads) at PostgreSQL; folders are conversations."""
    env.state_db = url  # type: ignore[assignment]  # IngestdEnv.rows opens it read-only
    env.write_config(
        state={"url": url, "work_dir": str(env.root / "work")},
        watch={"conversation": {"by": "folder"}},
        **config,
    )


def arrive(env: IngestdEnv, make_media, singles: int, meeting: bool = True) -> dict[str, str]:
    """`singles` one-file conversations and the two-part meeting; relpath -> sha256."""
    files = {
        f"call-{i}/call-{i}.wav": make_media(f"call-{i}.wav", seconds=0.4) for i in range(singles)
    }
    if meeting:
        files[MEETING[0]] = make_media("part1.wav", seconds=0.4)
        files[MEETING[1]] = make_media("part2.wav", seconds=0.4)
    hashes = {rel: sha256(path) for rel, path in files.items()}
    for rel, path in files.items():
        drop(path, env.inbox / Path(rel).parent)
    return hashes


def assert_once_each(sandbox, env: IngestdEnv, hashes: dict[str, str]) -> None:
    """Every file's bytes created a job exactly once; the meeting is one conversation."""
    by_sha = created_by_sha(sandbox)
    assert {rel: by_sha[sha] for rel, sha in hashes.items()} == dict.fromkeys(hashes, 1)
    if MEETING[0] not in hashes:
        assert len(sandbox.conversations()) == len(hashes)
        return
    rows = {r["relpath"]: r for r in env.rows()}
    assert rows[MEETING[0]]["conversation_id"] == rows[MEETING[1]]["conversation_id"]
    assert len(sandbox.conversations()) == len(hashes) - 1
    methods = Counter(s["method"] for s in created(sandbox))
    assert methods == {"POST": len(hashes) - 1, "PUT": 1}


def test_sigkill_mid_run_on_postgres_loses_and_doubles_nothing(
    ingestd_env, sandbox, make_media, postgres_database
) -> None:
    sandbox.set_options({"job_seconds": 1.0, "schedule_seconds": 0.02})
    env = ingestd_env
    on_postgres(env, postgres_database)
    hashes = arrive(env, make_media, singles=4)
    daemon = env.daemon().start()
    daemon.wait_ready()
    wait_for(lambda: created(sandbox), 60, "a first job at the sandbox")
    daemon.kill()
    assert any(s not in ("done",) for s in env.states().values()), "killed mid-run"
    final = env.daemon().start()
    final.wait_ready()
    states = wait_terminal(env, hashes, timeout=120)
    assert set(states.values()) == {"done"}, log_tail(env)
    assert_once_each(sandbox, env, hashes)

    status = run_cli(env, "status")
    assert status.returncode == 0, status.stderr
    assert "done" in status.stdout and "postgresql://" not in status.stderr
    [node_line] = [line for line in status.stdout.splitlines() if str(final.process.pid) in line]
    assert node_line.startswith(socket.gethostname()[:12]), status.stdout  # node.name default
    as_json = json.loads(run_cli(env, "status", "--json").stdout)
    assert [n["pid"] for n in as_json["nodes"]] == [final.process.pid]
    mapping = run_cli(env, "map")
    assert mapping.returncode == 0, mapping.stderr
    assert "meeting" in mapping.stdout
    assert final.stop() == 0


def test_retry_goes_through_the_postgres_store(
    ingestd_env, sandbox, make_media, postgres_database
) -> None:
    """A recording whose job failed is failed; `ingestd retry` re-queues it on PostgreSQL
    and the running daemon finishes it."""
    env = ingestd_env
    on_postgres(env, postgres_database, pipeline={"resubmit_failed_jobs": 0})
    sandbox.faults.arm({"kind": "fail_job", "times": 1})
    source = make_media("doomed.wav")
    digest = sha256(source)
    daemon = env.daemon().start()
    daemon.wait_ready()
    drop(source, env.inbox / "doomed")
    env.wait_states({"doomed/doomed.wav": "failed"})
    retry = run_cli(env, "retry")
    assert retry.returncode == 0, retry.stderr
    assert "1 recording re-queued" in retry.stdout
    env.wait_states({"doomed/doomed.wav": "done"})
    assert created_by_sha(sandbox)[digest] == 2, "the failed job's upload and the retry"
    assert daemon.stop() == 0


def test_a_server_stopped_and_started_mid_run_is_waited_for(
    ingestd_env,
    sandbox,
    make_media,
    private_postgres,  # noqa: F811
    notify_socket,  # noqa: F811
) -> None:
    """The daemon says the database is gone (log and systemd STATUS=, still alive to the
    watchdog), waits, reconnects, and loses nothing."""
    notify = notify_socket
    sandbox.set_options({"job_seconds": 1.5, "schedule_seconds": 0.02})
    server = private_postgres
    env = ingestd_env
    on_postgres(env, server.url())
    (env.root / "pgpass").write_text(PASSWORD + "\n")
    env.write_config(
        state={"url": server.url(), "password_file": str(env.root / "pgpass"),
               "work_dir": str(env.root / "work")},
        watch={"conversation": {"by": "folder"}},
    )  # fmt: skip
    env.state_db = server.url(password=True)  # type: ignore[assignment]
    # with the meeting: after the outage both its parts may fetch at the same moment
    hashes = arrive(env, make_media, singles=4)
    daemon = env.daemon()
    daemon.env["NOTIFY_SOCKET"] = notify.path
    daemon.env["WATCHDOG_USEC"] = "2000000"  # WATCHDOG=1 every second
    daemon.env.pop("WATCHDOG_PID", None)
    daemon.start()
    daemon.wait_ready()
    wait_for(lambda: created(sandbox), 60, "a first job at the sandbox")
    server.stop()
    wait_for(lambda: daemon.has_event("state_database_unreachable"), 60, "the daemon to say so")
    down = time.monotonic()
    time.sleep(3)  # down for a while, with jobs running at the sandbox
    assert daemon.process.poll() is None, "the daemon waits instead of exiting"
    waiting = [line for line in notify.lines() if "waiting for the state database" in line]
    assert waiting and waiting[-1].startswith("STATUS=waiting for the state database"), waiting
    assert PASSWORD not in "".join(waiting)
    assert len([t for t in notify.times("WATCHDOG=1") if t > down]) >= 2, "alive to systemd"
    server.start()
    wait_for(lambda: daemon.has_event("state_database_reconnected"), 60, "reconnected")
    states = wait_terminal(env, hashes, timeout=120)
    assert set(states.values()) == {"done"}, log_tail(env)
    assert_once_each(sandbox, env, hashes)
    assert PASSWORD not in (env.root / "daemon.log").read_text()
    assert daemon.stop() == 0


def run_refused(
    env: IngestdEnv, url: str, password: str | None = None
) -> subprocess.CompletedProcess[str]:
    state = {"url": url}
    if password is not None:
        (env.root / "pgpass").write_text(password + "\n")
        state["password_file"] = str(env.root / "pgpass")
    env.write_config(state=state)
    return subprocess.run(
        [sys.executable, "-m", "ingestd.cli", "run", "--config", str(env.config_path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_what_only_the_operator_can_fix_exits_78_with_the_reason(
    ingestd_env,
    private_postgres,  # noqa: F811
) -> None:
    server = private_postgres
    env = ingestd_env
    cases = [
        (f"postgresql://postgres@127.0.0.1:{server.port}", None, "no database given"),
        (server.url("no_such_db"), PASSWORD, 'database "no_such_db" does not exist'),
        (server.url(), "wrong-password", "password authentication failed"),
    ]
    for url, password, reason in cases:
        done = run_refused(env, url, password)
        assert done.returncode == 78, (url, done.stderr)
        assert reason in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
        assert "wrong-password" not in done.stderr and PASSWORD not in done.stderr
    run_refused(env, server.url("no_such_db"), PASSWORD)  # writes the config
    env.write_config(state={"url": server.url(), "password_file": str(env.root / "pgpass")})
    status = run_cli(env, "status")  # the right password: the schema is made, nothing in it
    assert status.returncode == 0, status.stderr
    assert f"no recordings yet in postgresql://postgres@127.0.0.1:{server.port}" in status.stdout


def test_a_second_daemon_with_the_same_node_name_is_refused(
    ingestd_env, tmp_path, postgres_database
) -> None:
    """Two daemons (own work dirs) on one database under one node.name: the second stops at
    start naming the first; once the first stops cleanly the name is free."""
    env = ingestd_env
    on_postgres(env, postgres_database, node={"name": "recorder-1"})
    first = env.daemon().start()
    first.wait_ready()
    twin = IngestdEnv(tmp_path / "twin", env.sandbox_url)
    twin.daemons = env.daemons  # stopped with the test's own, pass or fail
    twin.write_config(
        state={"url": postgres_database, "work_dir": str(twin.root / "work")},
        node={"name": "recorder-1"},
    )
    refused = run_cli(twin, "run")
    assert refused.returncode == 69, refused.stderr
    assert "another ingestd runs as node 'recorder-1'" in refused.stderr
    assert f"pid {first.process.pid}" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert first.stop() == 0
    second = twin.daemon().start()
    try:
        second.wait_ready()
    finally:
        assert second.stop() == 0


def test_sigterm_while_waiting_for_the_database_stops_the_daemon(
    ingestd_env,
    sandbox,
    make_media,
    private_postgres,  # noqa: F811
) -> None:
    """Waiting for PostgreSQL blocks the daemon's work, not its stop; the next start on a
    server that is back finishes everything, once."""
    server = private_postgres
    env = ingestd_env
    on_postgres(env, server.url(password=True))
    hashes = arrive(env, make_media, singles=2, meeting=False)
    daemon = env.daemon().start()
    daemon.wait_ready()
    wait_for(lambda: created(sandbox), 60, "a first job at the sandbox")
    server.stop()
    wait_for(lambda: daemon.has_event("state_database_unreachable"), 60, "the daemon to say so")
    code = daemon.stop(timeout=20)
    assert code != 0, "stopped without its state written: not a clean stop"
    assert "stopped while waiting for the state database" in daemon.log_text()
    assert not daemon.has_event("shutdown_forced"), "one SIGTERM is one graceful stop"
    server.start()
    final = env.daemon().start()
    final.wait_ready()
    states = wait_terminal(env, hashes, timeout=120)
    assert set(states.values()) == {"done"}, log_tail(env)
    assert_once_each(sandbox, env, hashes)
    assert final.stop() == 0


FAST_LEASES = {"heartbeat_seconds": 0.5, "lease_seconds": 2}


def second_node(env: IngestdEnv, tmp_path: Path, url: str, name: str) -> IngestdEnv:
    """Another node of `env`'s database: its own work dir and log, the same watch folder."""
    other = IngestdEnv(tmp_path / name, env.sandbox_url)
    other.daemons = env.daemons  # stopped with the test's own, pass or fail
    other.state_db = url  # type: ignore[assignment]
    other.write_config(
        state={"url": url, "work_dir": str(other.root / "work")},
        watch={"path": str(env.inbox), "conversation": {"by": "folder"}},
        sinks=[{"type": "files", "path": str(env.results)}],
        node={"name": name, **FAST_LEASES},
        symbl={"max_concurrent_jobs": 2},
    )
    return other


def refused_submissions(sandbox) -> int:
    """Uploads the sandbox answered 429 (the account's job limit was reached)."""
    return sum(
        1 for s in sandbox.submissions() if s["outcome"] == "rejected" and s["status_code"] == 429
    )


@pytest.mark.parametrize("sandbox_options", [SHARED_LIMIT], indirect=False)
def test_two_nodes_on_one_folder_share_the_work_and_the_job_limit(
    ingestd_env, sandbox, tmp_path, postgres_database, make_media
) -> None:
    """Two nodes on one database watch one folder: every file is recorded once and
    submitted once (the meeting's parts in order, as one conversation), and the two never
    have more jobs at the API together than the account's limit (2): no 429 at all."""
    env = ingestd_env
    on_postgres(
        env, postgres_database, node={"name": "a", **FAST_LEASES}, symbl={"max_concurrent_jobs": 2}
    )
    other = second_node(env, tmp_path, postgres_database, "b")
    nodes = [env.daemon().start(), other.daemon().start()]
    for node in nodes:
        node.wait_ready()
    hashes = arrive(env, make_media, singles=8)
    wait_terminal(env, hashes, timeout=120)
    assert set(env.states().values()) == {"done"}, env.states()
    assert_once_each(sandbox, env, hashes)
    assert sandbox.stats()["max_concurrent_jobs_seen"] <= 2
    assert refused_submissions(sandbox) == 0
    status = run_cli(env, "status")
    assert "a" in status.stdout and "b" in status.stdout
    for node in nodes:
        assert node.stop() == 0


@pytest.mark.parametrize("sandbox_options", [SLOW_JOBS], indirect=False)
def test_a_killed_nodes_job_is_adopted_by_another_node(
    ingestd_env, sandbox, tmp_path, postgres_database, make_media
) -> None:
    """SIGKILL the node waiting for a job: once its lease runs out the other node adopts
    the recording (``work_adopted``), polls the same job and delivers; nothing is sent
    twice."""
    env = ingestd_env
    on_postgres(env, postgres_database, node={"name": "a", **FAST_LEASES})
    first = env.daemon().start()
    first.wait_ready()
    hashes = arrive(env, make_media, singles=1, meeting=False)
    wait_for(lambda: set(env.states().values()) == {"submitted"}, 60, "the job submitted")
    first.kill()
    killed_at = time.monotonic()
    other = second_node(env, tmp_path, postgres_database, "b")
    second = other.daemon().start()
    second.wait_ready()
    wait_for(lambda: second.has_event("work_adopted", from_node="a"), 30, "adopted by b")
    adopted_after = time.monotonic() - killed_at
    wait_terminal(env, hashes, timeout=60)
    assert set(env.states().values()) == {"done"}, log_tail(env)
    assert_once_each(sandbox, env, hashes)
    assert adopted_after < FAST_LEASES["lease_seconds"] + 10
    adopted = [e for e in second.events() if e.get("event") == "work_adopted"]
    assert [e["state"] for e in adopted] == ["submitted"]
    assert second.stop() == 0


def test_a_drained_node_claims_nothing_new_until_undrained(
    ingestd_env, sandbox, postgres_database, make_media
) -> None:
    """``ingestd drain``: a new file is recorded but not worked on by the drained node (no
    other node here: it waits, visibly ``discovered``); ``undrain`` and it is delivered."""
    env = ingestd_env
    on_postgres(env, postgres_database, node={"name": "a", **FAST_LEASES})
    daemon = env.daemon().start()
    daemon.wait_ready()
    assert run_cli(env, "drain").returncode == 0
    wait_for(lambda: daemon.has_event("node_draining"), 15, "the drain seen at a heartbeat")
    hashes = arrive(env, make_media, singles=1, meeting=False)
    wait_for(lambda: set(env.states().values()) == {"discovered"}, 30, "the file recorded")
    # Recording the file woke the dispatcher at once; four heartbeats later nothing started
    # (a non-event has nothing to wait for but time).
    time.sleep(4 * FAST_LEASES["heartbeat_seconds"])
    assert set(env.states().values()) == {"discovered"}, "a drained node starts nothing new"
    assert not created(sandbox)
    assert run_cli(env, "undrain").returncode == 0
    wait_terminal(env, hashes, timeout=60)
    assert set(env.states().values()) == {"done"}
    assert_once_each(sandbox, env, hashes)
    assert daemon.stop() == 0


def test_a_share_mounted_elsewhere_is_read_under_each_nodes_own_path(
    ingestd_env, sandbox, tmp_path, postgres_database, make_media
) -> None:
    """Node a records the files under its mount of the share; its path is then gone (its
    host, say) and node b, which mounts the same share elsewhere under the same watch name,
    probes, transcodes and uploads them from its own path."""
    env = ingestd_env
    mount_a = tmp_path / "mnt-a"
    mount_a.mkdir()
    watch = {"name": "share", "conversation": {"by": "folder"}}
    on_postgres(env, postgres_database, node={"name": "a", **FAST_LEASES})
    env.write_config(
        state={"url": postgres_database, "work_dir": str(env.root / "work")},
        watch={**watch, "path": str(mount_a)},
        node={"name": "a", **FAST_LEASES},
    )
    first = env.daemon().start()
    first.wait_ready()
    assert run_cli(env, "drain").returncode == 0  # a records, and leaves the work to b
    wait_for(lambda: first.has_event("node_draining"), 15, "the drain seen")
    files = {f"call-{i}/call-{i}.wav": make_media(f"call-{i}.wav", seconds=0.4) for i in (1, 2)}
    hashes = {rel: sha256(path) for rel, path in files.items()}
    for rel, path in files.items():
        drop(path, mount_a / Path(rel).parent)
    wait_for(lambda: len(env.rows()) == 2, 30, "both files recorded by a")
    assert {r["watch_root"] for r in env.rows()} == {str(mount_a)}
    assert first.stop() == 0
    share = mount_a.rename(tmp_path / "share")  # a's path is no more
    mount_b = tmp_path / "mnt-b"
    mount_b.symlink_to(share, target_is_directory=True)
    other = IngestdEnv(tmp_path / "b", env.sandbox_url)
    other.daemons = env.daemons  # stopped with the test's own, pass or fail
    other.write_config(
        state={"url": postgres_database, "work_dir": str(other.root / "work")},
        watch={**watch, "path": str(mount_b)},
        sinks=[{"type": "files", "path": str(env.results)}],
        node={"name": "b", **FAST_LEASES},
    )
    second = other.daemon().start()
    second.wait_ready()
    wait_terminal(env, hashes, timeout=60)
    assert set(env.states().values()) == {"done"}, log_tail(other)
    assert {rel: created_by_sha(sandbox)[sha] for rel, sha in hashes.items()} == dict.fromkeys(
        hashes, 1
    )
    assert {r["watch_root"] for r in env.rows()} == {str(mount_a)}, "the rows keep a's record"
    assert second.stop() == 0


def test_a_node_without_ffmpeg_leaves_probes_and_transcodes_to_one_that_has_it(
    ingestd_env, sandbox, tmp_path, postgres_database, make_media
) -> None:
    """A node that cannot run ffmpeg/ffprobe says so once and claims no probe or
    transcode; the node that can does them all; nothing fails."""
    env = ingestd_env
    on_postgres(env, postgres_database, node={"name": "good", **FAST_LEASES})
    other = second_node(env, tmp_path, postgres_database, "bad")
    broken = {"INGESTD_FFMPEG": "/nonexistent/ffmpeg", "INGESTD_FFPROBE": "/nonexistent/ffprobe"}
    bad = DaemonProcess(other.config_path, other.root / "daemon.log", env=broken).start()
    other.daemons.append(bad)
    bad.wait_ready()
    good = env.daemon().start()
    good.wait_ready()
    hashes = arrive(env, make_media, singles=4, meeting=False)
    wait_terminal(env, hashes, timeout=60)
    assert set(env.states().values()) == {"done"}, log_tail(env)
    assert_once_each(sandbox, env, hashes)
    events = bad.events()
    assert [e["missing"] for e in events if e["event"] == "node_cannot_transcode"] == [
        ["ffmpeg", "ffprobe"]
    ]
    probed_by_bad = [
        e for e in events if e["event"] == "state_changed" and e["new"] in ("probed", "transcoded")
    ]
    assert not probed_by_bad
    assert not [e for e in events if e["event"] == "stage_retry_scheduled"], "it never tried"
    for daemon in (good, bad):
        assert daemon.stop() == 0


def events_of(daemons) -> list[dict]:
    return [e for daemon in daemons for e in daemon.events()]


def test_two_nodes_move_each_file_and_delete_each_conversation_once(
    ingestd_env, sandbox, tmp_path, postgres_database, make_media
) -> None:
    """After-success moves and deletions at the API with two nodes: each file is moved by
    one node (no node finds it gone or held), each conversation deleted by one DELETE."""
    env = ingestd_env
    done = tmp_path / "done"
    after = {"after_success": {"action": "move", "to": str(done)}}
    on_postgres(env, postgres_database, node={"name": "a", **FAST_LEASES})
    other = second_node(env, tmp_path, postgres_database, "b")
    for node_env in (env, other):  # conversations of their own: deleted once delivered
        config = yaml.safe_load(node_env.config_path.read_text())
        config["watch"][0].update(after)
        del config["watch"][0]["conversation"]
        config["symbl"]["delete_after_delivery"] = True
        node_env.config_path.write_text(yaml.safe_dump(config))
    nodes = [env.daemon().start(), other.daemon().start()]
    for node in nodes:
        node.wait_ready()
    hashes = arrive(env, make_media, singles=6, meeting=False)
    wait_terminal(env, hashes, timeout=90)
    wait_for(lambda: not sandbox.conversations(), 60, "every conversation deleted")
    wait_for(lambda: len(list(done.rglob("*.wav"))) == len(hashes), 30, "every file moved")
    assert sorted(p.name for p in done.rglob("*.wav")) == sorted(Path(r).name for r in hashes)
    # A move links the target first and removes the source after: wait for the removals.
    wait_for(lambda: not list(env.inbox.rglob("*.wav")), 30, "every source removed")
    stats = sandbox.stats()
    assert stats["conversations_deleted"] == len(hashes)
    assert "404" not in stats["requests"]["conversation"], "a second DELETE found it gone"

    def deleted() -> list[dict]:  # each logged once its DELETE was answered
        return [e for e in events_of(nodes) if e["event"] == "conversation_deleted_at_api"]

    wait_for(lambda: len(deleted()) >= len(hashes), 10, "every deletion logged")
    assert len(deleted()) == len(hashes)
    events = events_of(nodes)
    troubles = [e for e in events if e["event"] in ("after_failed", "after_held", "after_crashed")]
    assert not troubles, troubles
    for node in nodes:
        assert node.stop() == 0
