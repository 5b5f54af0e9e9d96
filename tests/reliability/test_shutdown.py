"""Shutdown and reload: SIGTERM finishes or checkpoints in-flight work and exits 0 within a
bound; SIGHUP reloads the configuration without losing work."""

from __future__ import annotations

import signal
import time

import yaml

from ingestd.testing import drop, wait_for

from .support import created, created_by_sha, sha256, wait_terminal

GRACE = 2.0
BOUND = GRACE + 6.0  # the grace, the 5 s the daemon allows cancelled tasks, and a margin


def in_flight(sandbox) -> int:
    return sum(1 for s in sandbox.submissions() if s["outcome"] == "receiving")


def stop_timed(daemon, sig: int = signal.SIGTERM) -> tuple[int, float]:
    started = time.monotonic()
    code = daemon.stop(sig, timeout=60)
    return code, time.monotonic() - started


def test_sigterm_during_uploads_lets_them_finish(ingestd_env, sandbox, make_media) -> None:
    """SIGTERM while uploads wait for their answer: they finish, exit 0 in bound, no repeats."""
    daemon = ingestd_env.daemon(pipeline={"shutdown_grace_seconds": 5}).start()
    daemon.wait_ready()
    sandbox.faults.arm({"kind": "latency", "seconds": 1.5, "times": 3, "route": "submit"})
    files = [make_media(f"up-{i}.wav") for i in range(3)]
    hashes = {f.name: sha256(f) for f in files}
    for f in files:
        drop(f, ingestd_env.inbox)
    wait_for(lambda: in_flight(sandbox) == 3, 30, "three uploads in flight")
    code, took = stop_timed(daemon)
    assert code == 0 and took <= 5 + 6, (code, took)
    assert daemon.has_event("shutdown_draining")
    states = ingestd_env.states()
    assert all(states[n] not in ("queued", "submitting") for n in hashes), states
    restarted = ingestd_env.daemon().start()
    ingestd_env.wait_states(dict.fromkeys(hashes, "done"))
    counts = created_by_sha(sandbox)
    assert all(counts[h] == 1 for h in hashes.values()), counts
    assert restarted.stop() == 0


def test_sigterm_checkpoints_work_longer_than_the_grace(ingestd_env, sandbox, make_media) -> None:
    """Fetches slower than the grace are cancelled, exit is 0 within bound, and the restart
    resumes them without a second upload."""
    daemon = ingestd_env.daemon(pipeline={"shutdown_grace_seconds": GRACE}).start()
    daemon.wait_ready()
    files = [make_media(f"fetch-{i}.wav") for i in range(3)]
    hashes = {f.name: sha256(f) for f in files}
    sandbox.faults.arm({"kind": "latency", "seconds": 8, "times": 21, "route": "conversation"})
    for f in files:
        drop(f, ingestd_env.inbox)
    wait_for(
        lambda: list(ingestd_env.states().values()).count("fetching") == 3, 30, "three fetches"
    )
    code, took = stop_timed(daemon)
    assert code == 0 and took <= BOUND, (code, took)
    assert set(ingestd_env.states().values()) == {"fetching"}, "checkpointed where they were"
    sandbox.faults.clear()
    restarted = ingestd_env.daemon().start()
    ingestd_env.wait_states(dict.fromkeys(hashes, "done"))
    counts = created_by_sha(sandbox)
    assert all(counts[h] == 1 for h in hashes.values()), counts
    assert restarted.stop() == 0


def test_sigterm_during_an_upload_past_the_grace_sends_it_once(
    ingestd_env, sandbox, make_media
) -> None:
    """An upload still waiting for its answer when the grace runs out is cancelled; after the
    restart it is reconciled with what the server did, never doubled."""
    daemon = ingestd_env.daemon(pipeline={"shutdown_grace_seconds": GRACE}).start()
    daemon.wait_ready()
    sandbox.faults.arm({"kind": "latency", "seconds": 5, "times": 1, "route": "submit"})
    source = make_media("long-upload.wav")
    digest = sha256(source)
    drop(source, ingestd_env.inbox)
    wait_for(lambda: in_flight(sandbox) == 1, 30, "the upload in flight")
    code, took = stop_timed(daemon)
    assert code == 0 and took <= BOUND, (code, took)
    restarted = ingestd_env.daemon().start()
    ingestd_env.wait_states({"long-upload.wav": "done"}, timeout=60)
    first = sandbox.submissions()[0]
    time.sleep(max(0.0, first["received_at"] + 5.5 - time.time()))  # the slow one landed
    assert created_by_sha(sandbox)[digest] == 1, "the cancelled upload was sent again"
    assert restarted.stop() == 0


def test_second_sigterm_stops_at_once(ingestd_env, sandbox, make_media) -> None:
    """A second SIGTERM cancels the drain at once; the restart still finishes everything."""
    daemon = ingestd_env.daemon(pipeline={"shutdown_grace_seconds": 30}).start()
    daemon.wait_ready()
    sandbox.faults.arm({"kind": "latency", "seconds": 20, "times": 14, "route": "conversation"})
    drop(make_media("stuck.wav"), ingestd_env.inbox)
    wait_for(lambda: ingestd_env.states().get("stuck.wav") == "fetching", 30, "a long fetch")
    daemon.process.send_signal(signal.SIGTERM)
    wait_for(lambda: daemon.has_event("shutdown_draining"), 10, "the drain")
    code, took = stop_timed(daemon)
    assert code == 0 and took <= 7, (code, took)
    assert daemon.has_event("shutdown_forced")
    sandbox.faults.clear()
    restarted = ingestd_env.daemon().start()
    ingestd_env.wait_states({"stuck.wav": "done"})
    assert len(created(sandbox)) == 1
    assert restarted.stop() == 0


def test_sighup_reload_during_work_loses_nothing(ingestd_env, sandbox, make_media) -> None:
    """SIGHUP amid work (a watch changed, one removed, one added, sinks changed): everything
    already found is finished once, the changed watch keeps its settling files, the added
    watch starts and the removed one stops."""
    sandbox.set_options({"job_seconds": 1.0})
    second = ingestd_env.root / "second"
    third = ingestd_env.root / "third"
    second.mkdir()  # watch folders must exist (or say create: true)
    third.mkdir()
    daemon = ingestd_env.daemon().start()
    config = yaml.safe_load(ingestd_env.config_path.read_text())
    first_watch = config["watch"][0]
    config["watch"].append({**first_watch, "name": "second", "path": str(second)})
    ingestd_env.config_path.write_text(yaml.safe_dump(config))
    daemon.stop()
    daemon = ingestd_env.daemon().start()
    daemon.wait_ready()
    early = {f"a-{i}.wav": ingestd_env.inbox for i in range(3)}
    early |= {f"b-{i}.wav": second for i in range(3)}
    for name, folder in early.items():
        drop(make_media(name), folder)
    wait_for(lambda: len(ingestd_env.rows()) == 6, 30, "six recordings found")
    wait_for(lambda: len(created(sandbox)) >= 2, 30, "work in flight")
    config["watch"] = [
        {**first_watch, "settle_seconds": 1.0},  # changed: restarted
        {**first_watch, "name": "third", "path": str(third)},  # added; "second" removed
    ]
    config["sinks"] = [{"type": "files", "path": str(ingestd_env.results), "formats": ["json"]}]
    ingestd_env.config_path.write_text(yaml.safe_dump(config))
    settling = drop(make_media("a-settling.wav"), ingestd_env.inbox)
    daemon.process.send_signal(signal.SIGHUP)
    wait_for(lambda: daemon.has_event("config_reloaded"), 30, "config_reloaded")
    drop(make_media("c-0.wav"), third)
    drop(make_media("b-late.wav"), second)
    expected = [*(f"{n}" for n in early if n.startswith("a")), settling.name, "c-0.wav"]
    states = wait_terminal(ingestd_env, [*expected, *(n for n in early if n.startswith("b"))], 60)
    assert set(states.values()) == {"done"}, states
    time.sleep(1.5)
    assert "b-late.wav" not in ingestd_env.states(), "the removed watch stopped"
    posts = [s for s in created(sandbox) if s["method"] == "POST"]
    assert len(posts) == len({s["sha256"] for s in posts}) == 8, "each sent once"
    assert daemon.process.poll() is None
    assert daemon.stop() == 0


def catches_sigterm(pid: int) -> bool:
    """The process has its own SIGTERM handler (the ``SigCgt`` mask in /proc)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("SigCgt:"):
                return bool(int(line.split()[1], 16) >> (signal.SIGTERM - 1) & 1)
    return False


def test_sigterm_while_starting_exits_zero(ingestd_env, sandbox, make_media) -> None:
    """SIGTERM that arrives while the daemon is still starting up also exits 0, quickly.

    Counted from the moment `ingestd.cli` has set its first handler: before that the
    interpreter itself is starting, which takes longer than 0.2 s on a loaded machine, and a
    signal then ends it as the kernel's default does (systemd counts that a clean stop too).
    """
    for i in range(3):
        drop(make_media(f"early-{i}.wav"), ingestd_env.inbox)
    ingestd_env.write_config()
    codes = []
    for delay in (0.2, 0.5, 0.8):
        daemon = ingestd_env.daemon().start()
        pid = daemon.process.pid
        wait_for(lambda pid=pid: catches_sigterm(pid), 30, "the first SIGTERM handler")
        assert not daemon.has_event("daemon_ready"), "still starting when the signal is sent"
        time.sleep(delay)
        code, took = stop_timed(daemon)
        codes.append(code)
        assert took <= BOUND, took
    assert codes == [0, 0, 0], f"exit codes for SIGTERM 0.2/0.5/0.8 s after start: {codes}"
    restarted = ingestd_env.daemon().start()
    ingestd_env.wait_states({f"early-{i}.wav": "done" for i in range(3)})
    assert len(created(sandbox)) == 3
    assert restarted.stop() == 0
