"""Output paths: every hostile name is cleaned and no rendered path leaves the root."""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

import pytest

from ingestd_files.paths import (
    COMPONENT_MAX_BYTES,
    UnsafePathError,
    clean_component,
    output_dir,
    render_template,
    template_fields,
)
from tests.files.fixtures import HOSTILE, result

TEMPLATES = [
    "{name}-{conversation_id}",
    "{watch}/{date}/{name}",
    "{name}/{stem}/{conversation_id}",
    "{stem}",
]


class TestCleanComponent:
    @pytest.mark.parametrize(
        ("raw", "clean"),
        [
            ("Weekly sync", "Weekly sync"),
            ("../../etc/x", "_._etc_x"),
            ("..", "_"),
            ("\x00", "_"),
            ("", "_"),
            ("line\nbreak\ttab", "line break tab"),
            ("<!channel>", "_!channel_"),
            ('a:b*c?d"e|f', "a_b_c_d_e_f"),
            ("\u202eevil\u202c", "evil"),
            ("\ufeffbom", "bom"),
            ("Cafe\u0301", "Café"),
            ("Zoë 日本 Ωμέγα", "Zoë 日本 Ωμέγα"),
            ("👨\u200d👩\u200d👧", "👨\u200d👩\u200d👧"),
            ("  .hidden. . ", "hidden"),
            ("wait... what", "wait. what"),
            ("CON", "_CON"),
            ("nul.txt", "_nul.txt"),
            ("com1", "_com1"),
            ("LPT9.log", "_LPT9.log"),
            ("CONSOLE", "CONSOLE"),
            ("a" * 500, "a" * COMPONENT_MAX_BYTES),
            ("a" + "日" * 50, "a" + "日" * 39),
        ],
    )
    def test_cases(self, raw: str, clean: str) -> None:
        """Separators, controls, bidi, leading dots and device names go; letters stay."""
        assert clean_component(raw) == clean

    def test_a_field_never_adds_a_level(self) -> None:
        """A slash inside a field is just a character: the template alone makes levels."""
        fields = {"name": "a/../b", "conversation_id": "c/d"}
        assert render_template("{name}/{conversation_id}", fields) == ["a_._b", "c_d"]

    def test_a_long_name_keeps_the_conversation_id(self) -> None:
        """Fields are capped before composing, so a 500-char name cannot push the id out."""
        [level] = render_template(
            "{name}-{conversation_id}", {"name": "n" * 500, "conversation_id": "ID42"}
        )
        assert level.endswith("-ID42") and len(level.encode()) <= COMPONENT_MAX_BYTES


class TestOutputDir:
    def test_default_layout(self, tmp_path: Path) -> None:
        """The default template names the folder after the conversation and its id."""
        fields = template_fields(result())
        assert fields == {
            "watch": "w",
            "date": "2024-03-05",
            "name": "Weekly sync",
            "conversation_id": "5093288386543616",
            "stem": "part0",
        }
        assert output_dir(tmp_path, "{watch}/{date}/{name}-{conversation_id}", fields) == (
            tmp_path.resolve() / "w" / "2024-03-05" / "Weekly sync-5093288386543616"
        )

    @pytest.mark.parametrize("template", TEMPLATES)
    @pytest.mark.parametrize("hostile", HOSTILE, ids=lambda s: repr(s)[:20])
    def test_hostile_names_stay_inside(self, tmp_path: Path, template: str, hostile: str) -> None:
        """Whatever every field holds, the folder is strictly inside the root and tame."""
        root = tmp_path / "root"
        fields = dict.fromkeys(("watch", "date", "name", "conversation_id", "stem"), hostile)
        target = output_dir(root, template, fields)
        assert target.is_relative_to(root.resolve()) and target != root.resolve()
        for level in target.relative_to(root.resolve()).parts:
            assert len(level.encode("utf-8")) <= COMPONENT_MAX_BYTES
            assert not level.startswith(".") and level not in ("", "..")
            assert all(unicodedata.category(ch)[0] != "C" or ch in "\u200c\u200d" for ch in level)
            assert "/" not in level and "\\" not in level

    def test_symlink_out_of_the_root_is_refused(self, tmp_path: Path) -> None:
        """A symlink on disk that leads outside the root is caught by the final check."""
        root, outside = tmp_path / "root", tmp_path / "outside"
        root.mkdir()
        outside.mkdir()
        os.symlink(outside, root / "link")
        with pytest.raises(UnsafePathError, match="outside the files sink's folder"):
            output_dir(root, "{name}/x", {"name": "link"})

    def test_symlink_inside_the_root_is_followed(self, tmp_path: Path) -> None:
        """A symlink that stays within the root is fine and resolved."""
        (tmp_path / "real").mkdir()
        os.symlink(tmp_path / "real", tmp_path / "alias")
        real = tmp_path.resolve() / "real" / "x"
        assert output_dir(tmp_path, "{name}/x", {"name": "alias"}) == real
