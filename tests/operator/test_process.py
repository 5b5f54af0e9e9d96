"""`ingestd process`: the CLI as a subprocess, against the test's sandbox (`--config`) or
its own embedded one (`--sandbox`), on media made by ffmpeg in the test."""

from __future__ import annotations

import json
import os
import pty
import shutil
import subprocess
import sys
from pathlib import Path

from ingestd.testing import drop, run_cli, wait_for


def process(*args: str, cwd: Path | None = None, timeout: float = 120):
    return subprocess.run(
        [sys.executable, "-m", "ingestd.cli", "process", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )


def created(sandbox) -> list[dict]:
    return [s for s in sandbox.submissions() if s["created"]]


def test_sandbox_json_for_each_file_in_order(make_media) -> None:
    """--sandbox says so on stderr; --json: one object per file, in the order given, with
    its conversationId and every fetched kind, messages among them."""
    first, second = make_media("first.wav", seconds=1), make_media("second.mp3", seconds=1)
    result = process("--sandbox", "--json", str(first), str(second))
    assert result.returncode == 0, result.stderr
    assert "embedded Symbl sandbox" in result.stderr
    assert "\r" not in result.stderr, "no progress line when stderr is not a terminal"
    out = json.loads(result.stdout)
    assert [Path(o["file"]).name for o in out] == ["first.wav", "second.mp3"]
    for o in out:
        assert o["conversationId"] and o["messages"]
        assert {"topics", "questions", "action_items", "follow_ups", "members"} <= set(o)
        assert o["messages"][0]["text"].startswith("Recording part sha256=")
    assert out[0]["conversationId"] != out[1]["conversationId"]


def test_markdown_and_progress_on_a_terminal(make_media) -> None:
    """Markdown by default; on a terminal, a progress line shows the upload and the job."""
    media = make_media("talk.wav", seconds=1)
    controller, terminal = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ingestd.cli", "process", "--sandbox", str(media)],
            stdout=subprocess.PIPE,
            stderr=terminal,
            text=True,
        )
        os.close(terminal)
        seen = b""
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # the terminal closed with the process
                break
            if not chunk:
                break
            seen += chunk
        stdout, _ = proc.communicate(timeout=120)
    finally:
        os.close(controller)
    assert proc.returncode == 0
    progress = seen.decode(errors="replace")
    assert "talk.wav: " in progress and "waiting for the job" in progress, progress
    assert "\r" in progress
    assert stdout.startswith("# talk\n") and "## Transcript" in stdout
    assert "## Action items" in stdout


def test_config_records_the_recording_so_the_daemon_does_not_resubmit(
    ingestd_env, sandbox, make_media
) -> None:
    """With --config: that backend and its sinks, and its state: a daemon started later on
    the same config neither submits the file again from the inbox nor as a copy."""
    ingestd_env.write_config()
    staged = make_media("call.wav", seconds=1)
    in_inbox = ingestd_env.inbox / "call.wav"
    shutil.copy2(staged, in_inbox)
    result = process("--config", str(ingestd_env.config_path), "--json", str(in_inbox))
    assert result.returncode == 0, result.stderr
    [out] = json.loads(result.stdout)
    assert "sandbox" not in result.stderr
    assert len(created(sandbox)) == 1
    assert list(ingestd_env.results.rglob("insights.json")), "the config's sinks delivered"
    rows = ingestd_env.rows()
    assert [(r["relpath"], r["state"], r["conversation_id"]) for r in rows] == [
        ("call.wav", "done", out["conversationId"])
    ]
    daemon = ingestd_env.daemon().start()
    daemon.wait_ready()
    drop(staged, ingestd_env.inbox, name="copy of call.wav")
    ingestd_env.wait_states({"copy of call.wav": "duplicate"})
    wait_for(lambda: daemon.has_event("rescan_finished"), 10, "the startup rescan")
    daemon.stop()
    assert len(created(sandbox)) == 1, "nothing submitted again"
    assert ingestd_env.states() == {"call.wav": "done", "copy of call.wav": "duplicate"}


def test_refuses_while_a_daemon_runs_on_the_same_state(ingestd_env, sandbox, make_media) -> None:
    daemon = ingestd_env.daemon().start()
    daemon.wait_ready()
    media = make_media("x.wav")
    result = process("--config", str(ingestd_env.config_path), str(media))
    daemon.stop()
    assert result.returncode == 69
    assert len(result.stderr.strip().splitlines()) == 1 and "another ingestd" in result.stderr
    assert created(sandbox) == []


def test_append_to_and_parameters(ingestd_env, sandbox, make_media) -> None:
    """--append-to PUTs into that conversation; --param sets a Symbl parameter."""
    ingestd_env.write_config()
    config = str(ingestd_env.config_path)
    one = make_media("one.wav")
    first = process("--config", config, "--json", str(one))
    assert first.returncode == 0, first.stderr
    cid = json.loads(first.stdout)[0]["conversationId"]
    shown = run_cli(ingestd_env, "show", str(one), "--json")  # outside every watch
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["api"]["conversation_id"] == cid
    second = process(
        "--config",
        config,
        "--json",
        "--append-to",
        cid,
        "--param",
        "languageCode=de-DE",
        "--param",
        "enableSeparateRecognitionPerChannel=false",
        str(make_media("two.wav")),
    )
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)[0]["conversationId"] == cid
    subs = sorted(created(sandbox), key=lambda s: s["seq"])
    assert [s["method"] for s in subs] == ["POST", "PUT"]
    assert subs[1]["conversationId"] == cid
    assert subs[1]["params"]["languageCode"] == "de-DE"
    bad = process("--sandbox", "--param", "novalue", str(make_media("three.wav")))
    assert bad.returncode == 78 and "expected KEY=VALUE" in bad.stderr


def test_bad_files_exit_1_with_the_daemons_message(ingestd_env, sandbox, make_media) -> None:
    """A file that is not media: the daemon's rejection message, exit 1; the good file of the
    same run is still printed."""
    daemon = ingestd_env.daemon().start()
    daemon.wait_ready()
    junk = b"not audio at all " * 300
    bad = ingestd_env.root / "notes.wav"
    bad.write_bytes(junk)
    drop(bad, ingestd_env.inbox)
    ingestd_env.wait_states({"notes.wav": "rejected"})
    daemon.stop()
    daemons_message = ingestd_env.rows()[0]["error"]
    elsewhere = ingestd_env.root / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "notes.wav").write_bytes(junk + b"!")  # not a duplicate of the first
    good = make_media("good.wav")
    result = process("--sandbox", "--json", str(elsewhere / "notes.wav"), str(good))
    assert result.returncode == 1
    assert "not media ffprobe can read" in daemons_message
    assert result.stderr.splitlines()[-1] == f"ingestd: {daemons_message}"
    assert [Path(o["file"]).name for o in json.loads(result.stdout)] == ["good.wav"]
    missing = process("--sandbox", str(elsewhere / "nope.wav"))
    assert missing.returncode == 1 and "no such file" in missing.stderr
    assert run_cli(ingestd_env, "status").returncode == 0


def test_interrupted_run_resumes_without_uploading_again(ingestd_env, sandbox, make_media) -> None:
    """SIGINT while the job runs: exit 130 saying the work is recorded; the same command
    then finishes it from the stored job, with no second upload."""
    import signal

    ingestd_env.write_config()
    sandbox.set_options({"job_seconds": 6})  # kept by that job: the resumed run waits it out
    media = make_media("long.wav")
    args = [sys.executable, "-m", "ingestd.cli", "process"]
    args += ["--config", str(ingestd_env.config_path), "--json", str(media)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: created(sandbox), 60, "the upload")
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "interrupted; what was sent is recorded" in stderr
    sandbox.set_options({"job_seconds": 0.2})
    again = process("--config", str(ingestd_env.config_path), "--json", str(media))
    assert again.returncode == 0, again.stderr
    assert len(created(sandbox)) == 1, "not uploaded again"
    assert json.loads(again.stdout)[0]["conversationId"] == created(sandbox)[0]["conversationId"]
