"""Plugins as a third party writes them, in the real daemon against the sandbox."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ingestd.testing import drop, run_cli, wait_for

WRAPPER = """\
from ingestd import hookimpl

@hookimpl(wrapper=True)
def ingestd_choose_endpoint(recording, media):
    result = yield
    return result

@hookimpl(wrapper=True)
def ingestd_transcode_plan(recording, media):
    plan = yield
    if recording.path.stem == "boom":
        raise RuntimeError("no plan for boom")
    return plan
"""


def test_a_standard_pluggy_wrapper_lets_recordings_through(
    ingestd_env, sandbox, make_media, tmp_path: Path
) -> None:
    """Issue 11: a ``wrapper=True`` hookimpl on a stage used to fail every recording with
    "'generator' object has no attribute 'to_dict'"; called through pluggy, it passes. A
    wrapper that raises fails only that recording, naming the plugin and the hook."""
    plugin = tmp_path / "wrapping.py"
    plugin.write_text(WRAPPER)
    daemon = ingestd_env.daemon(plugins=[str(plugin)]).start()
    daemon.wait_ready()
    drop(make_media("call.wav"), ingestd_env.inbox)
    drop(make_media("demo.mp4"), ingestd_env.inbox)
    drop(make_media("boom.wav"), ingestd_env.inbox)
    ingestd_env.wait_states({"call.wav": "done", "demo.mp4": "done", "boom.wav": "failed"})
    (boom,) = [r for r in ingestd_env.rows() if r["relpath"] == "boom.wav"]
    assert boom["error"] == (
        "plugin 'wrapping' raised in ingestd_transcode_plan: RuntimeError: no plan for boom"
    )
    routes = sorted(s["route"] for s in sandbox.submissions() if s["outcome"] == "created")
    assert routes == ["audio", "video"]
    chosen = [e for e in daemon.events() if e.get("new") == "queued"]
    assert {e["chosen_by"] for e in chosen} == {"routing"}  # the wrapper passed it through
    assert daemon.stop() == 0


LISTENER = """\
import json, os
from ingestd import hookimpl

def _write(**event):
    with open({log!r}, "a") as f:
        f.write(json.dumps({{"pid": os.getpid(), **event}}) + "\\n")

@hookimpl
def ingestd_state_changed(recording, old, new, facts):
    _write(hook="state_changed", path=recording.relpath, old=old, new=new)

@hookimpl
def ingestd_recording_done(recording, result):
    _write(hook="done", path=recording.relpath, conversation=result.recording.conversation_id)

@hookimpl
def ingestd_recording_failed(recording, error):
    _write(hook="failed", path=recording.relpath, error=error)
"""

LOUD = """\
from ingestd import hookimpl

@hookimpl
def ingestd_state_changed(recording, old, new, facts):
    raise RuntimeError("loud state_changed")

@hookimpl
def ingestd_recording_done(recording, result):
    raise RuntimeError("loud done")

@hookimpl
def ingestd_recording_failed(recording, error):
    raise RuntimeError("loud failed")
"""

PIPELINE_TO_DONE = [
    (None, "discovered"),
    ("discovered", "probed"),
    ("probed", "transcoded"),
    ("transcoded", "queued"),
    ("queued", "submitting"),
    ("submitting", "submitted"),
    ("submitted", "fetching"),
    ("fetching", "delivering"),
    ("delivering", "done"),
]


def heard(log: Path, path: str, hook: str | None = None) -> list[dict]:
    events = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return [e for e in events if e["path"] == path and (hook is None or e["hook"] == hook)]


def changes(log: Path, path: str) -> list[tuple[str | None, str]]:
    return [(e["old"], e["new"]) for e in heard(log, path, "state_changed")]


def test_event_hooks_hear_every_source_of_change_once_per_end(
    ingestd_env, sandbox, make_media, tmp_path: Path
) -> None:
    """Issue 11: intake (discovered, duplicate), every pipeline stage, `ingestd retry` and
    `ingestd redeliver` reach ``ingestd_state_changed``; each end fires done/failed once, and
    again when a retried or redelivered recording ends again. A plugin raising in every
    event hook is logged by name and fails nothing, in the daemon and in the commands."""
    log = tmp_path / "heard.jsonl"
    listener, loud = tmp_path / "listener.py", tmp_path / "loud.py"
    listener.write_text(LISTENER.format(log=str(log)))
    loud.write_text(LOUD)
    daemon = ingestd_env.daemon(plugins=[str(listener), str(loud)]).start()
    daemon.wait_ready()
    audio = make_media("a.wav")
    copy = audio.with_name("copy.wav")
    shutil.copyfile(audio, copy)
    drop(audio, ingestd_env.inbox)
    ingestd_env.wait_states({"a.wav": "done"})
    drop(copy, ingestd_env.inbox)
    (ingestd_env.inbox / "empty.wav").write_bytes(b"")
    ingestd_env.wait_states({"copy.wav": "duplicate", "empty.wav": "rejected"})

    assert changes(log, "a.wav") == PIPELINE_TO_DONE
    assert len(heard(log, "a.wav", "done")) == 1
    assert changes(log, "copy.wav") == [(None, "duplicate")]
    assert changes(log, "empty.wav") == [(None, "discovered"), ("discovered", "rejected")]
    assert len(heard(log, "empty.wav", "failed")) == 1
    assert {e["pid"] for e in heard(log, "a.wav")} == {daemon.process.pid}

    rows = {r["relpath"]: r for r in ingestd_env.rows()}
    retried = run_cli(ingestd_env, "retry", str(rows["empty.wav"]["id"]))
    assert retried.returncode == 0, retried.stderr
    wait_for(lambda: len(heard(log, "empty.wav", "failed")) == 2, 30, "the second rejection")
    by_command = [e for e in heard(log, "empty.wav") if e["pid"] != daemon.process.pid]
    assert [(e["old"], e["new"]) for e in by_command] == [("rejected", "discovered")]
    assert changes(log, "empty.wav")[-1] == ("discovered", "rejected")

    redelivered = run_cli(ingestd_env, "redeliver", rows["a.wav"]["conversation_id"])
    assert redelivered.returncode == 0, redelivered.stderr
    wait_for(lambda: len(heard(log, "a.wav", "done")) == 2, 30, "the redelivered recording")
    assert changes(log, "a.wav")[len(PIPELINE_TO_DONE) :] == [
        ("done", "delivering"),
        ("delivering", "done"),
    ]
    by_command = [e for e in heard(log, "a.wav") if e["pid"] != daemon.process.pid]
    assert [(e["old"], e["new"]) for e in by_command] == [("done", "delivering")]

    failures = [e for e in daemon.events() if e.get("event") == "event_hook_failed"]
    assert {(e["plugin"], e["hook"]) for e in failures} == {
        ("loud", "ingestd_state_changed"),
        ("loud", "ingestd_recording_done"),
        ("loud", "ingestd_recording_failed"),
    }
    for result in (retried, redelivered):  # the commands say so too, and still succeed
        assert "event_hook_failed" in result.stdout and "loud" in result.stdout
    assert daemon.stop() == 0


class TestAfterARestart:
    @pytest.fixture
    def sandbox_options(self) -> dict:
        """Jobs long enough to kill the daemon while one is running."""
        return {"job_seconds": 4.0, "schedule_seconds": 0.05, "concurrency_limit": 5}

    def test_a_resumed_recording_is_heard_from_where_it_stopped_and_ends_once(
        self, ingestd_env, sandbox, make_media, tmp_path: Path
    ) -> None:
        """Startup recovery is a source of changes like any other: after a SIGKILL while
        the job runs, the restarted daemon's changes reach the hooks, none is repeated,
        and the end is heard once."""
        log = tmp_path / "heard.jsonl"
        listener = tmp_path / "listener.py"
        listener.write_text(LISTENER.format(log=str(log)))
        daemon = ingestd_env.daemon(plugins=[str(listener)]).start()
        daemon.wait_ready()
        drop(make_media("a.wav"), ingestd_env.inbox)
        ingestd_env.wait_states({"a.wav": "submitted"})
        daemon.kill()
        restarted = ingestd_env.daemon().start()
        ingestd_env.wait_states({"a.wav": "done"})
        wait_for(lambda: heard(log, "a.wav", "done"), 10, "the end to be heard")
        assert changes(log, "a.wav") == PIPELINE_TO_DONE
        assert len(heard(log, "a.wav", "done")) == 1
        after = [(e["old"], e["new"]) for e in heard(log, "a.wav", "state_changed")
                 if e["pid"] == restarted.process.pid]  # fmt: skip
        assert after == PIPELINE_TO_DONE[-3:]
        assert restarted.stop() == 0
