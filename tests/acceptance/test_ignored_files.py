"""Files a watch leaves out are said once each, with the reason (issue 15, point 7)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from ingestd.config import WatchConfig
from ingestd.configload import DEFAULT_IGNORE
from ingestd.testing import drop, wait_for
from ingestd.watch import ignore_reason

ROOT = Path(__file__).resolve().parents[2]


def test_reasons() -> None:
    """Each way of being left out has its own reason; an included file has none."""
    watch = WatchConfig(
        name="in", path=Path("/in"), patterns=("*.wav",), ignore=(*DEFAULT_IGNORE, "old/*")
    )
    assert ignore_reason(watch, "a.WAV") is None
    assert ignore_reason(watch, "call.webm") == "matches none of the watch's patterns (*.wav)"
    assert ignore_reason(watch, "a.wav.part") == "a temporary name (ignore pattern '*.part')"
    assert ignore_reason(watch, ".a.wav") == "a hidden file (its name starts with a dot)"
    assert ignore_reason(watch, ".sync/x/a.wav") == (
        "inside the hidden folder '.sync' (ignore pattern '.*')"
    )
    assert ignore_reason(watch, "old/a.wav") == "its path matches the ignore pattern 'old/*'"


def test_each_ignored_file_is_logged_once_with_its_reason(ingestd_env, make_media) -> None:
    """A webm before the start, and a temporary name, a hidden folder and an aac while
    running: one ``file_ignored`` each, however often they change or are rescanned; the
    wav beside them is processed."""
    (ingestd_env.inbox / "before.webm").write_bytes(b"not looked at")
    daemon = ingestd_env.daemon(
        watch={"patterns": ["*.wav"]}, pipeline={"rescan_interval_seconds": 1}
    ).start()
    daemon.wait_ready()
    partial = ingestd_env.inbox / "upload.wav.part"
    partial.write_bytes(b"x")
    (ingestd_env.inbox / ".stversions").mkdir()
    (ingestd_env.inbox / ".stversions" / "old.wav").write_bytes(b"x")
    (ingestd_env.inbox / "voice.aac").write_bytes(b"x")
    drop(make_media("kept.wav"), ingestd_env.inbox)
    ingestd_env.wait_states({"kept.wav": "done"})
    for _ in range(3):
        partial.write_bytes(partial.read_bytes() + b"more")
    rescans = len([e for e in daemon.events() if e["event"] == "rescan_finished"])
    wait_for(
        lambda: len([e for e in daemon.events() if e["event"] == "rescan_finished"]) >= rescans + 2,
        30,
        "two more rescans",
    )
    told = [e for e in daemon.events() if e["event"] == "file_ignored"]
    by_path = {e["path"]: e for e in told}
    assert len(told) == len(by_path), f"one line per file: {told}"
    assert by_path["before.webm"]["reason"] == "matches none of the watch's patterns (*.wav)"
    assert by_path["voice.aac"]["reason"].startswith("matches none")
    assert by_path["upload.wav.part"]["reason"] == "a temporary name (ignore pattern '*.part')"
    hidden = [p for p in by_path if p.startswith(".stversions")]
    assert hidden and "hidden folder '.stversions'" in by_path[hidden[0]]["reason"]
    assert all(e["level"] == "info" for e in told)
    assert "kept.wav" not in by_path
    assert daemon.stop() == 0


def test_example_config_takes_every_format_the_readme_lists() -> None:
    """config/example.yaml's patterns cover each format README's Transcoding section names."""
    text = " ".join((ROOT / "README.md").read_text().split())
    lists = re.findall(r"(?:audio|video containers) \(([^)]*)\)", text)
    assert len(lists) >= 2, "the Transcoding section's format lists"
    formats = {"wav", "mp3", "mp4"} | {
        item.split()[-1] for group in lists for item in group.split(", ")
    }
    example = yaml.safe_load((ROOT / "config" / "example.yaml").read_text())
    patterns = set(example["watch"][0]["patterns"])
    assert {f"*.{f}" for f in formats} <= patterns, sorted({f"*.{f}" for f in formats} - patterns)
