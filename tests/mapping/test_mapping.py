"""ingestd_mapping: options, and the key of every strategy, on a fake history."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ingestd import EXISTING_CONVERSATION, NEW_CONVERSATION, ConfigError, conversation_name
from ingestd.config import WatchConfig
from ingestd.errors import Rejected
from ingestd.model import Recording
from ingestd_mapping import (
    ingestd_conversation_key,
    ingestd_conversation_key_could_match,
    ingestd_validate_watch,
    parse_options,
)
from ingestd_mapping.keys import escape

T0 = 1_700_000_000.0
MINUTE = 60.0


class FakeHistory:
    """`MappingHistory` over a list, as the store answers it: newest mtime per key."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, float]] = []

    def recent_keys(self, prefix: str, since_mtime: float) -> list[tuple[str, float]]:
        latest: dict[str, float] = {}
        for key, mtime in self.rows:
            if key.startswith(prefix) and mtime >= since_mtime:
                latest[key] = max(mtime, latest.get(key, mtime))
        return sorted(latest.items(), key=lambda item: -item[1])


def watch(root: Path, name: str = "sales", **conversation: Any) -> WatchConfig:
    return WatchConfig(name=name, path=root, conversation=conversation)


def recording(w: WatchConfig, relpath: str, mtime: float = T0) -> Recording:
    return Recording(
        id=1,
        path=w.path / relpath,
        relpath=relpath,
        watch=w,
        size_bytes=1,
        mtime=mtime,
        sha256="x",
        state="discovered",
    )


def keys_for(w: WatchConfig, files: list[tuple[str, float]]) -> dict[str, str]:
    """Assign keys in the given (settle) order, recording each in the history as the core does."""
    history = FakeHistory()
    out = {}
    for relpath, mtime in files:
        key = ingestd_conversation_key(recording(w, relpath, mtime), history)
        out[relpath] = key
        if key:
            history.rows.append((key, mtime))
    return out


def groups(keys: dict[str, str]) -> list[list[str]]:
    """Files sharing a key, as sorted groups; files of their own are singletons."""
    by_key: dict[str, list[str]] = {}
    for relpath, key in keys.items():
        by_key.setdefault(key or f"own:{relpath}", []).append(relpath)
    return sorted(sorted(g) for g in by_key.values())


class TestOptions:
    def test_defaults(self, tmp_path: Path) -> None:
        """No section: each file its own conversation, appended by name."""
        options = parse_options(watch(tmp_path))
        assert (options.by, options.order, options.window_minutes) == ("none", "name", 30.0)

    @pytest.mark.parametrize(
        ("conversation", "line"),
        [
            (
                {"by": "folders"},
                "by: expected one of none, folder, regex, sidecar, ttl, got 'folders'",
            ),
            ({"order": "size"}, "order: expected one of name, mtime, got 'size'"),
            (
                {"by": "regex"},
                "pattern: missing: a regular expression with a group (?P<key>...) is needed",
            ),
            (
                {"by": "regex", "pattern": "meeting-(\\d+"},
                "pattern: not a valid regular expression "
                "(missing ), unterminated subpattern at position 8)",
            ),
            (
                {"by": "regex", "pattern": "meeting-(\\d+)"},
                "pattern: expected a named group (?P<key>...) for the conversation key",
            ),
            (
                {"by": "regex", "pattern": "(?P<key>x)", "match": "stem"},
                "match: expected one of name, path, got 'stem'",
            ),
            (
                {"by": "ttl", "window_minutes": 0},
                "window_minutes: expected a number of minutes > 0, got 0",
            ),
            (
                {"by": "ttl", "window_minutes": "5"},
                "window_minutes: expected a number of minutes > 0, got '5'",
            ),
            (
                {"by": "ttl", "group": "day"},
                "group: expected one of watch, folder, regex, got 'day'",
            ),
            (
                {"by": "ttl", "group": "regex"},
                "pattern: missing: a regular expression with a group (?P<key>...) is needed",
            ),
            (
                {"by": "folder", "pattern": "(?P<key>x)"},
                "pattern: only used with by: regex (or by: ttl with group: regex)",
            ),
            (
                {"by": "folder", "window_minutes": 5},
                "window_minutes: only used with by: ttl, but by is 'folder'",
            ),
            (
                {"by": "folder", "windows_minutes": 5},
                "windows_minutes: unknown key; did you mean 'window_minutes'?",
            ),
        ],
    )
    def test_problems_name_the_key(self, tmp_path: Path, conversation: dict, line: str) -> None:
        """Each bad option is one line naming the watch and the key."""
        assert ingestd_validate_watch(watch(tmp_path, **conversation)) == [
            f"watch[sales].conversation.{line}"
        ]

    def test_valid_sections(self, tmp_path: Path) -> None:
        """Every strategy with its options validates."""
        for conversation in (
            {"by": "none"},
            {"by": "folder", "order": "mtime"},
            {"by": "regex", "pattern": r"meeting-(?P<key>\d+)", "match": "path"},
            {"by": "sidecar"},
            {"by": "ttl", "window_minutes": 12.5, "group": "folder", "order": "mtime"},
            {"by": "ttl", "group": "regex", "pattern": r"(?P<key>\w+)-"},
        ):
            assert ingestd_validate_watch(watch(tmp_path, **conversation)) == []

    def test_hook_raises_config_error_for_a_bad_section(self, tmp_path: Path) -> None:
        """A recording in a watch whose section is broken fails with the config problem."""
        with pytest.raises(ConfigError, match=r"conversation\.by"):
            keys_for(watch(tmp_path, by="nope"), [("a.wav", T0)])


class TestNoneAndFolder:
    def test_none(self, tmp_path: Path) -> None:
        """Each file is its own conversation, sub-folder or not."""
        keys = keys_for(watch(tmp_path), [("a.wav", T0), ("m/b.wav", T0), ("m/c.wav", T0)])
        assert set(keys.values()) == {NEW_CONVERSATION}

    def test_folder(self, tmp_path: Path) -> None:
        """A sub-folder is one conversation; root files are their own; nesting is kept."""
        w = watch(tmp_path, by="folder")
        files = ["a.wav", "b.wav", "m1/p1.wav", "m1/p2.wav", "m2/p1.wav", "m1/x/p1.wav"]
        keys = keys_for(w, [(f, T0) for f in files])
        assert groups(keys) == [
            ["a.wav"],
            ["b.wav"],
            ["m1/p1.wav", "m1/p2.wav"],
            ["m1/x/p1.wav"],
            ["m2/p1.wav"],
        ]
        assert keys["m1/p1.wav"] == "folder:sales:m1"

    def test_folder_keys_differ_between_watches(self, tmp_path: Path) -> None:
        """The same sub-folder name in two watches is two conversations."""
        a = keys_for(watch(tmp_path, "a", by="folder"), [("m/p.wav", T0)])
        b = keys_for(watch(tmp_path, "b", by="folder"), [("m/p.wav", T0)])
        assert a["m/p.wav"] != b["m/p.wav"]


class TestRegex:
    PATTERN = r"meeting-(?P<key>\d+)-part\d+"

    def test_named_group_of_the_file_name(self, tmp_path: Path) -> None:
        """Files with the same key group form one conversation; no match is its own."""
        w = watch(tmp_path, by="regex", pattern=self.PATTERN)
        files = [
            "meeting-7-part1.wav",
            "x/meeting-7-part2.wav",
            "meeting-8-part1.wav",
            "notes.wav",
            "other.wav",
        ]
        keys = keys_for(w, [(f, T0) for f in files])
        assert groups(keys) == [
            ["meeting-7-part1.wav", "x/meeting-7-part2.wav"],
            ["meeting-8-part1.wav"],
            ["notes.wav"],
            ["other.wav"],
        ]
        assert keys["meeting-7-part1.wav"] == "regex:sales:7"

    def test_match_path(self, tmp_path: Path) -> None:
        """With match: path the pattern searches the path under the watch."""
        w = watch(tmp_path, by="regex", pattern=r"^(?P<key>[^/]+)/", match="path")
        keys = keys_for(w, [("acme/a.wav", T0), ("acme/b.wav", T0), ("c.wav", T0)])
        assert groups(keys) == [["acme/a.wav", "acme/b.wav"], ["c.wav"]]

    def test_key_with_colon_is_escaped(self, tmp_path: Path) -> None:
        """A key group holding ':' cannot be confused with another key."""
        w = watch(tmp_path, by="regex", pattern=r"^(?P<key>.+)_")
        assert keys_for(w, [("a:b_1.wav", T0)])["a:b_1.wav"] == "regex:sales:a%3Ab"
        assert escape("50%:x") == "50%25%3Ax"


class TestSidecar:
    def test_sidecar_keys(self, tmp_path: Path) -> None:
        """Files whose sidecars name one key form one conversation; others are their own."""
        w = watch(tmp_path, by="sidecar")
        for name in ("a", "b"):
            (tmp_path / f"{name}.ingestd.yaml").write_text("conversation: {key: weekly}")
        keys = keys_for(w, [("a.wav", T0), ("b.wav", T0), ("c.wav", T0)])
        assert groups(keys) == [["a.wav", "b.wav"], ["c.wav"]]
        assert keys["a.wav"] == "sidecar:sales:weekly"

    def test_conversation_id_appends_to_an_existing_conversation(self, tmp_path: Path) -> None:
        """A sidecar's conversationId maps the file to that existing conversation."""
        w = watch(tmp_path, by="sidecar")
        (tmp_path / "a.ingestd.json").write_text('{"conversation": {"conversationId": "123"}}')
        assert keys_for(w, [("a.wav", T0)])["a.wav"] == EXISTING_CONVERSATION + "123"

    def test_sidecar_wins_over_any_strategy(self, tmp_path: Path) -> None:
        """Under folder mapping, a file's sidecar key still decides its conversation."""
        w = watch(tmp_path, by="folder")
        (tmp_path / "m").mkdir()
        (tmp_path / "m" / "b.ingestd.yaml").write_text("conversation: {key: other}")
        keys = keys_for(w, [("m/a.wav", T0), ("m/b.wav", T0)])
        assert keys == {"m/a.wav": "folder:sales:m", "m/b.wav": "sidecar:sales:other"}

    def test_bad_sidecar_is_rejected(self, tmp_path: Path) -> None:
        """A sidecar with a bad conversation section rejects with its name and key."""
        (tmp_path / "a.ingestd.yaml").write_text("conversation: {conversationId: abc}")
        with pytest.raises(Rejected, match=r"sidecar a.ingestd.yaml: conversation.conversationId"):
            keys_for(watch(tmp_path, by="sidecar"), [("a.wav", T0)])


class TestTtl:
    def test_files_within_the_window_of_each_other(self, tmp_path: Path) -> None:
        """Gaps of at most the window chain files into one conversation; a longer gap splits."""
        w = watch(tmp_path, by="ttl", window_minutes=10)
        files = [
            ("a.wav", T0),
            ("b.wav", T0 + 8 * MINUTE),
            ("c.wav", T0 + 16 * MINUTE),
            ("d.wav", T0 + 40 * MINUTE),
            ("e.wav", T0 + 45 * MINUTE),
        ]
        keys = keys_for(w, files)
        assert groups(keys) == [["a.wav", "b.wav", "c.wav"], ["d.wav", "e.wav"]]
        assert keys["a.wav"] == f"ttl:sales::{int(T0)}"
        assert keys["d.wav"] == f"ttl:sales::{int(T0 + 40 * MINUTE)}"

    def test_late_arrival_joins_the_conversation_of_its_time(self, tmp_path: Path) -> None:
        """A file settling after later ones joins the conversation its mtime belongs to."""
        w = watch(tmp_path, by="ttl", window_minutes=10)
        files = [("a.wav", T0), ("c.wav", T0 + 30 * MINUTE), ("b.wav", T0 + 5 * MINUTE)]
        assert groups(keys_for(w, files)) == [["a.wav", "b.wav"], ["c.wav"]]

    @pytest.mark.parametrize(
        ("b_minutes", "expected"),
        [(9, [["a.wav"], ["b.wav", "c.wav"]]), (7, [["a.wav", "b.wav"], ["c.wav"]])],
    )
    def test_nearest_conversation_wins(
        self, tmp_path: Path, b_minutes: int, expected: list[list[str]]
    ) -> None:
        """Between two conversations in reach, a file joins the one nearer in time."""
        w = watch(tmp_path, by="ttl", window_minutes=10)
        files = [("a.wav", T0), ("c.wav", T0 + 16 * MINUTE), ("b.wav", T0 + b_minutes * MINUTE)]
        assert groups(keys_for(w, files)) == expected

    def test_group_by_folder(self, tmp_path: Path) -> None:
        """With group: folder, files of different folders never share a conversation."""
        w = watch(tmp_path, by="ttl", group="folder", window_minutes=10)
        files = [
            ("x/a.wav", T0),
            ("y/a.wav", T0 + MINUTE),
            ("x/b.wav", T0 + 2 * MINUTE),
            ("r.wav", T0),
            ("s.wav", T0 + MINUTE),
        ]
        assert groups(keys_for(w, files)) == [
            ["r.wav", "s.wav"],
            ["x/a.wav", "x/b.wav"],
            ["y/a.wav"],
        ]

    def test_group_by_regex(self, tmp_path: Path) -> None:
        """With group: regex, the pattern's key separates; no match is its own."""
        w = watch(
            tmp_path, by="ttl", group="regex", pattern=r"^(?P<key>[a-z]+)-", window_minutes=10
        )
        files = [
            ("desk-1.wav", T0),
            ("room-1.wav", T0),
            ("desk-2.wav", T0 + MINUTE),
            ("desk-3.wav", T0 + 30 * MINUTE),
            ("x.wav", T0),
        ]
        assert groups(keys_for(w, files)) == [
            ["desk-1.wav", "desk-2.wav"],
            ["desk-3.wav"],
            ["room-1.wav"],
            ["x.wav"],
        ]

    def test_group_prefix_is_not_confused(self, tmp_path: Path) -> None:
        """Group 'a' never joins the conversation of group 'a:b' (escaped)."""
        w = watch(tmp_path, by="ttl", group="regex", pattern=r"^(?P<key>.+)_", window_minutes=10)
        keys = keys_for(w, [("a:b_1.wav", T0), ("a_1.wav", T0)])
        assert keys["a:b_1.wav"] != keys["a_1.wav"]


class TestConversationName:
    """`conversation_name`: the default name of a conversation, read back from its key."""

    @pytest.mark.parametrize(
        ("key", "name"),
        [
            ("folder:sales:meeting-42", "meeting-42"),
            ("folder:sales:2026/q4/meeting-42", "meeting-42"),
            ("regex:sales:ACME%3A42", "ACME:42"),
            ("sidecar:sales:weekly-sync", "weekly-sync"),
            ("ttl:sales::1767225600", "sales 2026-01-01 00:00"),
            ("ttl:sales:.:1767225600", "sales 2026-01-01 00:00"),
            ("ttl:sales:calls%3Ab:1767225600", "calls:b 2026-01-01 00:00"),
            ("conversation:5678", None),
            (None, None),
        ],
    )
    def test_names(self, key: str | None, name: str | None) -> None:
        assert conversation_name(key) == name


class TestCouldMatch:
    """Could a file not recorded yet get a given key? What the ordering hold asks."""

    @staticmethod
    def answers(w: WatchConfig, key_of: str, files: list[str]) -> dict[str, bool | None]:
        key = keys_for(w, [(key_of, T0)])[key_of]
        return {f: ingestd_conversation_key_could_match(w, f, key) for f in files}

    def test_folder_same_sub_folder_only(self, tmp_path: Path) -> None:
        """The part's own sub-folder could; another folder or the watch's own cannot."""
        w = watch(tmp_path, by="folder")
        assert self.answers(w, "a/part2.wav", ["a/part1.wav", "b/part1.wav", "p.wav"]) == {
            "a/part1.wav": True,
            "b/part1.wav": False,
            "p.wav": False,
        }

    def test_regex_same_group_only(self, tmp_path: Path) -> None:
        """The same pattern group could, wherever the file lies; another group or no match
        cannot."""
        w = watch(tmp_path, by="regex", pattern=r"meeting-(?P<key>\d+)-part\d+")
        files = ["x/meeting-7-part1.wav", "meeting-8-part1.wav", "notes.wav"]
        assert self.answers(w, "meeting-7-part2.wav", files) == {
            "x/meeting-7-part1.wav": True,
            "meeting-8-part1.wav": False,
            "notes.wav": False,
        }

    def test_ttl_same_group_whatever_the_mtime(self, tmp_path: Path) -> None:
        """A file of the same ttl group could (its mtime is not final yet); another group
        cannot; group: watch holds every file."""
        w = watch(tmp_path, by="ttl", group="folder")
        assert self.answers(w, "a/2.wav", ["a/1.wav", "b/1.wav", "1.wav"]) == {
            "a/1.wav": True,
            "b/1.wav": False,
            "1.wav": False,
        }
        whole = watch(tmp_path, by="ttl")
        assert self.answers(whole, "a/2.wav", ["b/1.wav"]) == {"b/1.wav": True}

    def test_sidecar_and_foreign_keys_cannot_be_told(self, tmp_path: Path) -> None:
        """Any file's sidecar may name a sidecar key or a conversationId, and a key of
        another strategy is not this plugin's to judge: None, so the watch-wide hold stays."""
        w = watch(tmp_path, by="folder")
        for key in (
            f"sidecar:sales:{escape('weekly')}",
            EXISTING_CONVERSATION + "123",
            "regex:sales:7",
            "someone-elses-key",
        ):
            assert ingestd_conversation_key_could_match(w, "a/part1.wav", key) is None, key
