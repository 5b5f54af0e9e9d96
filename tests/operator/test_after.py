"""after_success / after_rejected: the daemon as a subprocess against the sandbox, real
files, real file systems (the move across file systems goes to /dev/shm, a tmpfs), and
SIGKILL at each recorded step of a move through the crash points."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingestd.testing import drop, run_cli, sha256_of, wait_for
from tests.acceptance.test_outbox import gate_env
from tests.reliability.support import daemon_with_env


@pytest.fixture
def other_fs(tmp_path: Path) -> Iterator[Path]:
    """A folder on another file system than the test's (tmpfs at /dev/shm)."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.fail("these tests need /dev/shm on a file system other than the temp folder")
    folder = shm / f"ingestd-test-{uuid.uuid4().hex}"
    folder.mkdir()
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _story(env, recording: str) -> dict:
    result = run_cli(env, "show", recording, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _after_state(env, recording: str) -> str | None:
    return (_story(env, recording).get("after") or {}).get("state")


def _wait_after(env, recording: str, state: str, timeout: float = 30) -> None:
    wait_for(lambda: _after_state(env, recording) == state, timeout, f"{recording}: {state}")


def _created(sandbox) -> int:
    return len([s for s in sandbox.submissions() if s["created"]])


class TestMove:
    def test_moves_keeping_the_path_and_never_overwriting(
        self, ingestd_env, sandbox, make_media
    ) -> None:
        """`team/weekly sync.wav` goes to DIR/team/weekly sync.wav once done; a name already
        taken there gets a number; status and show say what happened."""
        done = ingestd_env.root / "done"
        (done / "team").mkdir(parents=True)
        (done / "team" / "b.wav").write_bytes(b"someone else's file")
        daemon = ingestd_env.daemon(
            watch={"after_success": {"action": "move", "to": str(done)}}
        ).start()
        daemon.wait_ready()
        source = make_media("weekly sync.wav")
        digest = sha256_of(source)
        drop(source, ingestd_env.inbox / "team")
        drop(make_media("b.wav"), ingestd_env.inbox / "team")
        ingestd_env.wait_states({"team/weekly sync.wav": "done", "team/b.wav": "done"})
        _wait_after(ingestd_env, "team/weekly sync.wav", "done")
        _wait_after(ingestd_env, "team/b.wav", "done")
        assert sha256_of(done / "team" / "weekly sync.wav") == digest
        assert (done / "team" / "b.wav").read_bytes() == b"someone else's file"
        assert (done / "team" / "b (1).wav").stat().st_size > 1000
        assert list((ingestd_env.inbox / "team").iterdir()) == []
        daemon.stop()
        story = _story(ingestd_env, "team/b.wav")
        assert story["after"]["target"] == str(done / "team" / "b (1).wav")
        assert "after        move -> " in run_cli(ingestd_env, "show", "team/b.wav").stdout
        status = json.loads(run_cli(ingestd_env, "status", "--json").stdout)
        assert status["after"] == {"move": {"done": 2}}

    def test_each_part_of_a_mapped_conversation_moves_once_it_is_delivered(
        self, ingestd_env, sandbox, make_media
    ) -> None:
        """Parts appended into one conversation each move once their own delivery is done;
        the conversation is complete at the API and the folder keeps its name."""
        done = ingestd_env.root / "done"
        daemon = ingestd_env.daemon(
            watch={
                "conversation": {"by": "folder"},
                "after_success": {"action": "move", "to": str(done)},
            }
        ).start()
        daemon.wait_ready()
        drop(make_media("part-1.wav"), ingestd_env.inbox / "meeting")
        ingestd_env.wait_states({"meeting/part-1.wav": "done"})
        _wait_after(ingestd_env, "meeting/part-1.wav", "done")
        assert (done / "meeting" / "part-1.wav").exists()
        drop(make_media("part-2.wav"), ingestd_env.inbox / "meeting")
        ingestd_env.wait_states({"meeting/part-2.wav": "done"})
        _wait_after(ingestd_env, "meeting/part-2.wav", "done")
        daemon.stop()
        assert sorted(p.name for p in (done / "meeting").iterdir()) == ["part-1.wav", "part-2.wav"]
        [cid] = {r["conversation_id"] for r in ingestd_env.rows()}
        assert len(sandbox.conversations()[cid]["parts"]) == 2

    def test_folder_inside_the_watch_is_ignored(self, ingestd_env, sandbox, make_media) -> None:
        """DIR inside the watch: the moved file is never recorded again, also not by the
        startup rescan of the next run."""
        daemon = ingestd_env.daemon(
            watch={"after_success": {"action": "move", "to": "inbox/processed"}}
        ).start()
        daemon.wait_ready()
        drop(make_media("a.wav"), ingestd_env.inbox)
        ingestd_env.wait_states({"a.wav": "done"})
        _wait_after(ingestd_env, "a.wav", "done")
        assert (ingestd_env.inbox / "processed" / "a.wav").exists()
        daemon.stop()
        again = ingestd_env.daemon().start()
        again.wait_ready()
        wait_for(lambda: again.has_event("rescan_finished"), 10, "the startup rescan")
        again.stop()
        assert [r["relpath"] for r in ingestd_env.rows()] == ["a.wav"]
        assert _created(sandbox) == 1

    def test_across_file_systems(self, ingestd_env, sandbox, make_media, other_fs) -> None:
        """To another file system: copied, fsynced, renamed, then the original removed."""
        daemon = ingestd_env.daemon(
            watch={"after_success": {"action": "move", "to": str(other_fs)}}
        ).start()
        daemon.wait_ready()
        source = make_media("x.wav")
        digest, mtime = sha256_of(source), source.stat().st_mtime_ns
        drop(source, ingestd_env.inbox)
        ingestd_env.wait_states({"x.wav": "done"})
        _wait_after(ingestd_env, "x.wav", "done")
        daemon.stop()
        moved = other_fs / "x.wav"
        assert sha256_of(moved) == digest and moved.stat().st_mtime_ns == mtime
        assert not (ingestd_env.inbox / "x.wav").exists()
        assert [p.name for p in other_fs.iterdir()] == ["x.wav"], "no temporary file left"

    def test_a_sink_not_done_holds_the_file_back(self, ingestd_env, sandbox, make_media) -> None:
        """While a sink has not confirmed delivery the original stays where it is."""
        plugin, hold, _, sinks = gate_env(ingestd_env)
        hold.touch()
        done = ingestd_env.root / "done"
        daemon = ingestd_env.daemon(
            watch={"after_success": {"action": "move", "to": str(done)}},
            plugins=[str(plugin)],
            sinks=sinks,
        ).start()
        daemon.wait_ready()
        drop(make_media("a.wav"), ingestd_env.inbox)
        ingestd_env.wait_states({"a.wav": "delivering"})
        wait_for(lambda: list(ingestd_env.results.rglob("insights.json")), 30, "files sink")
        assert (ingestd_env.inbox / "a.wav").exists() and not done.exists()
        hold.unlink()
        ingestd_env.wait_states({"a.wav": "done"})
        _wait_after(ingestd_env, "a.wav", "done")
        assert (done / "a.wav").exists() and not (ingestd_env.inbox / "a.wav").exists()
        daemon.stop()

    @pytest.mark.slow(seconds=33)
    def test_a_file_changed_since_its_fingerprint_is_left_alone(
        self, ingestd_env, sandbox, make_media
    ) -> None:
        """Rewritten while its recording was delivered: that recording's action is held and
        the new content is never moved for it."""
        plugin, hold, _, sinks = gate_env(ingestd_env)
        hold.touch()
        done = ingestd_env.root / "done"
        daemon = ingestd_env.daemon(
            watch={"after_success": {"action": "move", "to": str(done)}, "settle_seconds": 30},
            plugins=[str(plugin)],
            sinks=sinks,
        ).start()
        daemon.wait_ready()
        drop(make_media("a.wav"), ingestd_env.inbox)
        ingestd_env.wait_states({"a.wav": "delivering"})
        first = ingestd_env.rows()[0]["id"]
        with open(ingestd_env.inbox / "a.wav", "ab") as handle:  # still settling afterwards
            handle.write(b"\0" * 4096)
        hold.unlink()
        wait_for(lambda: _after_state(ingestd_env, str(first)) == "held", 30, "held")
        story = _story(ingestd_env, str(first))
        assert "size changed" in story["after"]["detail"]
        assert (ingestd_env.inbox / "a.wav").exists() and not done.exists()
        daemon.stop()


class TestDeleteAndRejected:
    def test_delete_needs_confirm(self, ingestd_env, sandbox) -> None:
        """`action: delete` without `confirm: true` is a config error (exit 78) naming it."""
        ingestd_env.write_config(watch={"after_success": {"action": "delete"}})
        result = run_cli(ingestd_env, "status")
        assert result.returncode == 78
        assert "after_success.confirm: action: delete needs `confirm: true`" in result.stderr
        ingestd_env.write_config(watch={"after_success": {"action": "dleete", "confirm": True}})
        result = run_cli(ingestd_env, "status")
        assert result.returncode == 78 and "expected one of keep, move, delete" in result.stderr
        ingestd_env.write_config(watch={"after_rejected": {"action": "delete", "confirm": True}})
        result = run_cli(ingestd_env, "status")
        assert result.returncode == 78 and "after_rejected.action" in result.stderr

    def test_delete_with_confirm_deletes_once_done(self, ingestd_env, sandbox, make_media) -> None:
        daemon = ingestd_env.daemon(
            watch={"after_success": {"action": "delete", "confirm": True}}
        ).start()
        daemon.wait_ready()
        drop(make_media("a.wav"), ingestd_env.inbox)
        ingestd_env.wait_states({"a.wav": "done"})
        _wait_after(ingestd_env, "a.wav", "done")
        assert not (ingestd_env.inbox / "a.wav").exists()
        assert list(ingestd_env.results.rglob("insights.json"))
        daemon.stop()

    def test_rejected_file_moves_with_its_reason(self, ingestd_env, sandbox) -> None:
        """A rejected file goes to its folder with NAME.error.txt saying why."""
        rejected = ingestd_env.root / "rejected"
        daemon = ingestd_env.daemon(
            watch={"after_rejected": {"action": "move", "to": str(rejected)}}
        ).start()
        daemon.wait_ready()
        bad = ingestd_env.root / "notes.wav"
        bad.write_bytes(b"not audio at all " * 200)
        drop(bad, ingestd_env.inbox / "q")
        ingestd_env.wait_states({"q/notes.wav": "rejected"})
        _wait_after(ingestd_env, "q/notes.wav", "done")
        daemon.stop()
        assert (rejected / "q" / "notes.wav").read_bytes() == b"not audio at all " * 200
        note = (rejected / "q" / "notes.wav.error.txt").read_text()
        error = ingestd_env.rows()[0]["error"]
        assert "q/notes.wav was rejected" in note and error in note
        assert not (ingestd_env.inbox / "q" / "notes.wav").exists()


MOVE_POINTS = ["move_target_made", "move_copied_recorded", "move_source_removed"]


class TestCrashes:
    """SIGKILL at each step: the next start finishes the move; one complete copy, never two,
    nothing submitted again, no temporary file left."""

    @pytest.mark.parametrize("point", ["move_copy_written", *MOVE_POINTS])
    def test_move_across_file_systems(
        self, ingestd_env, sandbox, make_media, other_fs, point
    ) -> None:
        self._crash_and_resume(ingestd_env, sandbox, make_media, other_fs, point)

    @pytest.mark.parametrize("point", MOVE_POINTS)
    def test_move_on_one_file_system(self, ingestd_env, sandbox, make_media, point) -> None:
        self._crash_and_resume(ingestd_env, sandbox, make_media, ingestd_env.root / "done", point)

    def _crash_and_resume(self, env, sandbox, make_media, target_dir: Path, point: str) -> None:
        env.write_config(watch={"after_success": {"action": "move", "to": str(target_dir)}})
        crashing = daemon_with_env(env, {"INGESTD_CRASH_AT": point}).start()
        crashing.wait_ready()
        source = make_media("call.wav")
        digest = sha256_of(source)
        drop(source, env.inbox / "team")
        assert crashing.process.wait(timeout=60) == -9, "killed at the crash point"
        resumed = env.daemon().start()
        resumed.wait_ready()
        _wait_after(env, "team/call.wav", "done")
        resumed.stop()
        copies = [p for p in target_dir.rglob("*") if p.is_file()]
        assert copies == [target_dir / "team" / "call.wav"], copies
        assert sha256_of(copies[0]) == digest
        assert not (env.inbox / "team" / "call.wav").exists()
        assert [r["relpath"] for r in env.rows()] == ["team/call.wav"]
        assert _created(sandbox) == 1

    def test_delete(self, ingestd_env, sandbox, make_media) -> None:
        """Killed right after the removal, before `done` was stored: the next start sees the
        file gone and records the deletion done; nothing else happens."""
        ingestd_env.write_config(watch={"after_success": {"action": "delete", "confirm": True}})
        crashing = daemon_with_env(ingestd_env, {"INGESTD_CRASH_AT": "delete_removed"}).start()
        crashing.wait_ready()
        drop(make_media("a.wav"), ingestd_env.inbox)
        assert crashing.process.wait(timeout=60) == -9
        assert not (ingestd_env.inbox / "a.wav").exists()
        resumed = ingestd_env.daemon().start()
        resumed.wait_ready()
        _wait_after(ingestd_env, "a.wav", "done")
        resumed.stop()
        assert _created(sandbox) == 1 and len(ingestd_env.rows()) == 1


def test_move_folders_inside_any_watch_are_ignored_there(tmp_path) -> None:
    """A move folder inside its own watch or another one is ignored by that watch."""
    from ingestd.configload import parse_config
    from ingestd.watch import matches

    text = f"""
symbl: {{base_url: sandbox}}
watch:
  - {{path: {tmp_path}/a, after_success: {{action: move, to: {tmp_path}/a/done}}}}
  - {{path: {tmp_path}/b, after_rejected: {{action: move, to: {tmp_path}/a/bad}}}}
"""
    a, b = parse_config(text, base=tmp_path).watches
    assert not matches(a, "done/x.wav") and not matches(a, "done/team/x.wav")
    assert not matches(a, "bad/x.wav")
    assert matches(a, "team/done/x.wav") and matches(a, "x.wav") and matches(b, "done/x.wav")
    assert a.after_success.action == "move" and a.after_success.to == tmp_path / "a" / "done"
    assert b.after_success.action == "keep"
