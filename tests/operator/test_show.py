"""`ingestd show`: a recording's whole story, from a real daemon's store, as an operator
reads it (CLI subprocess)."""

from __future__ import annotations

import json

from ingestd.testing import drop, run_cli


def test_show_tells_the_whole_story_by_id_and_by_path(ingestd_env, sandbox, make_media) -> None:
    """By id, by absolute path and by watch path: file, fingerprint, every state change,
    decisions, the delivery with its receipt, the conversation; --json has the same."""
    daemon = ingestd_env.daemon().start()
    daemon.wait_ready()
    drop(make_media("weekly sync.wav", seconds=1), ingestd_env.inbox / "team")
    ingestd_env.wait_states({"team/weekly sync.wav": "done"})
    daemon.stop()
    row = ingestd_env.rows()[0]

    by_id = run_cli(ingestd_env, "show", str(row["id"]), "--json")
    assert by_id.returncode == 0, by_id.stderr
    story = json.loads(by_id.stdout)
    assert story["file"]["path"] == "team/weekly sync.wav" and story["file"]["exists"]
    assert story["fingerprint"]["sha256"] == row["sha256"]
    assert story["state"] == "done"
    assert [e["to"] for e in story["history"]] == [
        "discovered", "probed", "transcoded", "queued", "submitting", "submitted", "fetching",
        "delivering", "done",
    ]  # fmt: skip
    assert story["api"]["conversation_id"] == row["conversation_id"]
    assert story["decisions"]["endpoint"]["kind"] == "audio"
    [delivery] = story["deliveries"]
    assert delivery["sink"] == "files" and delivery["state"] == "done"
    paths = story["results"]["sinks"]["files"]["paths"]
    assert any(str(ingestd_env.results) in p for p in paths)

    by_path = run_cli(ingestd_env, "show", str(ingestd_env.inbox / "team" / "weekly sync.wav"))
    assert by_path.returncode == 0, by_path.stderr
    text = by_path.stdout
    assert text.startswith(f"#{row['id']} inbox/team/weekly sync.wav")
    assert "submitted -> fetching" in text and row["conversation_id"] in text
    assert "files" in text and "done" in text
    assert run_cli(ingestd_env, "show", "inbox/team/weekly sync.wav").stdout == text
    assert run_cli(ingestd_env, "show", f"#{row['id']}").stdout == text


def test_show_a_rejected_file_gives_the_reason(ingestd_env, sandbox) -> None:
    """A file that is not media: its rejection reason is in the story."""
    daemon = ingestd_env.daemon().start()
    daemon.wait_ready()
    bad = ingestd_env.root / "notes.wav"
    bad.write_bytes(b"this is not audio at all" * 100)
    drop(bad, ingestd_env.inbox)
    ingestd_env.wait_states({"notes.wav": "rejected"})
    daemon.stop()
    result = run_cli(ingestd_env, "show", "notes.wav")
    assert result.returncode == 0, result.stderr
    assert "state        rejected" in result.stdout
    assert "error" in result.stdout and "notes.wav" in result.stdout


def test_show_unknown_recording_is_one_clear_line(ingestd_env, sandbox, make_media) -> None:
    """An unknown id or path exits 1 with one line naming what was asked, no traceback."""
    daemon = ingestd_env.daemon().start()
    daemon.wait_ready()
    daemon.stop()
    for wanted in ("999", "nowhere/x.wav"):
        result = run_cli(ingestd_env, "show", wanted)
        assert result.returncode == 1
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "no recording" in result.stderr
