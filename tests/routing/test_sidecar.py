"""Sidecar files: where they are looked for, what they may hold, and how a bad one fails."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingestd.errors import Rejected
from ingestd.sidecar import Sidecar
from ingestd.sidecar import read_sidecar as read


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


class TestFinding:
    def test_no_sidecar_is_an_empty_one(self, tmp_path: Path) -> None:
        """A recording without a sidecar gets no parameters and no conversation."""
        assert read(tmp_path / "call.wav", "call.wav") == Sidecar()

    @pytest.mark.parametrize("name", ["call.ingestd.yaml", "call.ingestd.yml", "call.ingestd.json"])
    def test_stem_sidecar(self, tmp_path: Path, name: str) -> None:
        """STEM.ingestd.yaml, .yml or .json next to the recording is read."""
        write(tmp_path / "team", name, '{"parameters": {"languageCode": "es-ES"}}')
        found = read(tmp_path / "team" / "call.wav", "team/call.wav")
        assert found.parameters == {"languageCode": "es-ES"}
        assert found.display == f"team/{name}"

    def test_full_name_sidecar_wins_over_the_stem_one(self, tmp_path: Path) -> None:
        """call.mp3.ingestd.yaml is for call.mp3 alone and wins over call.ingestd.yaml."""
        write(tmp_path, "call.ingestd.yaml", "parameters: {mode: phone}")
        write(tmp_path, "call.mp3.ingestd.yaml", "parameters: {mode: default}")
        assert read(tmp_path / "call.mp3", "call.mp3").parameters == {"mode": "default"}
        assert read(tmp_path / "call.wav", "call.wav").parameters == {"mode": "phone"}

    def test_two_sidecars_at_one_level_are_rejected(self, tmp_path: Path) -> None:
        """YAML and JSON sidecars for the same file are ambiguous: the user keeps one."""
        write(tmp_path, "call.ingestd.yaml", "parameters: {}")
        write(tmp_path, "call.ingestd.json", "{}")
        with pytest.raises(Rejected, match=r"call.wav has two sidecars, call.ingestd.yaml and "):
            read(tmp_path / "call.wav", "call.wav")


class TestContent:
    def test_conversation_key_and_parameters(self, tmp_path: Path) -> None:
        """Both sections are read; a numeric key is taken as text."""
        write(tmp_path, "a.ingestd.yaml", "parameters:\n  mode: phone\nconversation:\n  key: 42\n")
        found = read(tmp_path / "a.wav", "a.wav")
        assert (found.parameters, found.conversation_key, found.conversation_id) == (
            {"mode": "phone"},
            "42",
            None,
        )

    def test_conversation_id_unquoted_in_yaml(self, tmp_path: Path) -> None:
        """An unquoted numeric conversationId (an int to YAML) is kept as its digits."""
        write(tmp_path, "a.ingestd.yaml", "conversation: {conversationId: 5815170693595136}")
        assert read(tmp_path / "a.wav", "a.wav").conversation_id == "5815170693595136"

    def test_empty_file_is_fine(self, tmp_path: Path) -> None:
        """An empty sidecar changes nothing."""
        write(tmp_path, "a.ingestd.yaml", "")
        found = read(tmp_path / "a.wav", "a.wav")
        assert (found.parameters, found.conversation_key) == ({}, None)

    @pytest.mark.parametrize(
        ("name", "text", "message"),
        [
            (
                "a.ingestd.yaml",
                "parameters: [1, 2",
                r"sidecar a.ingestd.yaml: line 1: not valid YAML",
            ),
            (
                "a.ingestd.json",
                '{"parameters": ',
                r"sidecar a.ingestd.json: line 1: not valid JSON",
            ),
            (
                "a.ingestd.yaml",
                "- 1\n- 2\n",
                r"expected a mapping with parameters and/or conversation, got \[1, 2\]",
            ),
            (
                "a.ingestd.yaml",
                "parameter: {}",
                r"parameter: unknown key; did you mean 'parameters'\?",
            ),
            ("a.ingestd.yaml", "parameters: mode", r"parameters: expected a mapping, got 'mode'"),
            (
                "a.ingestd.yaml",
                "conversation: {keys: x}",
                r"conversation.keys: unknown key; did you mean 'key'\?",
            ),
            (
                "a.ingestd.yaml",
                "conversation: {key: a, conversationId: '1'}",
                r"give key or conversationId, not both",
            ),
            (
                "a.ingestd.yaml",
                "conversation: {key: ''}",
                r"conversation.key: expected a non-empty string, got ''",
            ),
            (
                "a.ingestd.yaml",
                "conversation: {conversationId: 9f0c-uuid}",
                r"conversation.conversationId: expected a Symbl conversationId",
            ),
        ],
    )
    def test_bad_sidecar_is_rejected_naming_file_and_key(
        self, tmp_path: Path, name: str, text: str, message: str
    ) -> None:
        """A sidecar that cannot be used rejects the recording with file, key and the fix."""
        write(tmp_path, name, text)
        with pytest.raises(Rejected, match=message) as caught:
            read(tmp_path / "a.wav", "a.wav")
        assert str(caught.value).startswith(f"sidecar {name}: ")
        assert str(caught.value).endswith("fix it, then `ingestd retry` the recording")
