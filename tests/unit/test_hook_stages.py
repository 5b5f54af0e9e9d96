"""The decision hooks the echo plugin (tests/third_party) does not implement, each answered by
a small local plugin over the bundled ones, seen through ``ingestd explain``'s questions
(the same hook calls the pipeline makes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ingestd import mediagen
from ingestd.configload import parse_config
from ingestd.explain import explain
from ingestd.plugins import load_plugins

LOCAL = """\
from ingestd import Media, Rejected, hookimpl

@hookimpl
def ingestd_accept(recording):
    if recording.path.name.startswith("draft-"):
        raise Rejected(f"{recording.relpath} is a draft; rename it to send it")

@hookimpl
def ingestd_probe(recording):
    if recording.path.suffix == ".pcm":  # raw samples ffprobe cannot read
        return Media("wav", 1.0, "pcm_s16le", 1, 8000)

@hookimpl
def ingestd_conversation_key(recording, history):
    if recording.path.name.startswith("team-"):
        return "team:" + recording.path.name.split("-")[1]

@hookimpl
def ingestd_conversation_key_could_match(watch, relpath, key):
    if key.startswith("team:"):
        return relpath.startswith("team-" + key.removeprefix("team:") + "-")
"""


@pytest.fixture
def world(tmp_path: Path) -> tuple[Any, Any, Path]:
    """(config, plugins with the local one over the bundled ones, the watched folder)."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    plugin = tmp_path / "local_rules.py"
    plugin.write_text(LOCAL)
    config = parse_config(
        f"symbl: {{base_url: sandbox}}\nwatch: [{{path: {inbox}, patterns: ['*'], "
        "conversation: {by: folder}}]\n",
        base=tmp_path,
    )
    return config, load_plugins((str(plugin),)), inbox


def steps(explained: Any, stage: str) -> list[Any]:
    return [s for s in explained.steps if s.stage == stage]


def test_hook_accept(world: tuple[Any, Any, Path]) -> None:
    """A veto rejects the file with the plugin's reason; other files pass."""
    config, plugins, inbox = world
    draft = mediagen.make_audio(inbox / "draft-1.wav", seconds=1)
    explained = explain(config, plugins, draft)
    assert explained.outcome == "rejected"
    assert steps(explained, "rejected")[0].decision == (
        "draft-1.wav is a draft; rename it to send it"
    )
    final = mediagen.make_audio(inbox / "final.wav", seconds=1)
    assert explain(config, plugins, final).outcome == "queued"


def test_hook_probe(world: tuple[Any, Any, Path]) -> None:
    """The first non-None probe wins over ffprobe's (``trylast``) for what it knows."""
    config, plugins, inbox = world
    raw = inbox / "line.pcm"
    raw.write_bytes(b"\0" * 16000)
    (probe,) = steps(explain(config, plugins, raw), "probe")
    assert probe.plugin == "local_rules" and probe.decision["sample_rate_hz"] == 8000
    wav = mediagen.make_audio(inbox / "call.wav", seconds=1)
    assert steps(explain(config, plugins, wav), "probe")[0].plugin == "ffmpeg"


def test_hook_conversation_key(world: tuple[Any, Any, Path]) -> None:
    """A plugin's key overrides the mapping plugin's; the first part of a key is POSTed."""
    config, plugins, inbox = world
    part = mediagen.make_audio(inbox / "team-7-part1.wav", seconds=1)
    explained = explain(config, plugins, part)
    (key,) = steps(explained, "conversation key")
    assert (key.plugin, key.decision) == ("local_rules", "team:7")
    assert steps(explained, "submit")[0].decision == "POST"
    other = mediagen.make_audio(inbox / "other.wav", seconds=1)
    assert steps(explain(config, plugins, other), "conversation key")[0].plugin == "mapping"


def test_hook_conversation_key_could_match(world: tuple[Any, Any, Path]) -> None:
    """For its own keys the plugin says which unrecorded files could join; the mapping
    plugin keeps answering for the keys of its strategies."""
    config, plugins, _ = world
    watch = config.watches[0]
    ask = plugins.call_first
    hook = "ingestd_conversation_key_could_match"
    assert ask(hook, watch=watch, relpath="team-7-part2.wav", key="team:7") == (
        True,
        "local_rules",
    )
    assert ask(hook, watch=watch, relpath="team-8-part1.wav", key="team:7") == (
        False,
        "local_rules",
    )
    answer, by = ask(hook, watch=watch, relpath="a/x.wav", key="folder:inbox:a")
    assert by == "mapping" and answer is True
