"""Config loading: substitution, secrets, and one clear line per problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingestd.config import Secret
from ingestd.configload import load_config, parse_config
from ingestd.errors import ConfigError

GOOD = """\
symbl:
  base_url: sandbox
  app_secret: ${TEST_SECRET}
watch:
  - path: inbox
    settle_seconds: 2
sinks:
  - {type: files, path: results}
"""


class TestGoodConfig:
    def test_paths_resolve_against_the_config_folder(self, tmp_path: Path) -> None:
        """Relative paths in the YAML are relative to the file, not the working directory."""
        (tmp_path / "c.yaml").write_text(GOOD.replace("${TEST_SECRET}", "x"))
        config = load_config(tmp_path / "c.yaml")
        assert config.watches[0].path == tmp_path / "inbox"
        assert config.sinks[0]["path"] == str(tmp_path / "results")
        assert config.state_path == tmp_path / "state" / "state.db"

    def test_environment_substitution_and_secret_masking(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """${VAR} is substituted and secrets keep their value but never show it."""
        monkeypatch.setenv("TEST_SECRET", "hunter2-very-secret")
        config = parse_config(GOOD)
        secret = config.symbl["app_secret"]
        assert isinstance(secret, Secret)
        assert secret == "hunter2-very-secret"
        assert "hunter2" not in repr(config.symbl)

    def test_credential_file(self, tmp_path: Path) -> None:
        """``app_secret_file`` reads the secret from a file (systemd LoadCredential)."""
        (tmp_path / "secret.txt").write_text("from-a-file\n")
        text = GOOD.replace("app_secret: ${TEST_SECRET}", "app_secret_file: secret.txt")
        config = parse_config(text, base=tmp_path)
        assert config.symbl["app_secret"] == "from-a-file"

    def test_default_ignores_cover_temporary_files(self) -> None:
        """Editor and sync-tool temporary files are ignored without configuration."""
        config = parse_config(GOOD.replace("${TEST_SECRET}", "x"))
        for pattern in ("*.part", "~$*", "*.tmp", ".*"):
            assert pattern in config.watches[0].ignore


S = "symbl: {base_url: sandbox}\n"
W = "watch: [{path: a}]\n"

BROKEN = [
    ("symbl: {}\nwatch: [{path: a}]", "symbl.base_url: expected 'sandbox'"),
    ("symbl: {base_url: sandbox}", "watch: expected a list of folders"),
    (S + "watch: [{path: a, settle_seconds: five}]",
     "watch[0].settle_seconds: expected a number >= 0, got 'five'"),
    (S + "watch: [{path: a, recursiv: true}]",
     "watch[0].recursiv: unknown key; did you mean 'recursive'?"),
    (S + W + "sinkz: []", "sinkz: unknown key; did you mean 'sinks'?"),
    (S + "watch: [{path: a}, {path: a}]",
     "watch[1].name: watch name 'a' is used twice"),
    (S + "watch: [{settle_seconds: 1}]", "watch[0].path: expected the folder"),
    (S + W + "sinks: [{path: x}]",
     "sinks[0]: expected a mapping with a 'type'"),
    (S + W + "logging: {level: loud}", "logging.level: expected debug"),
    (S + W + "pipeline: {max_attempts: 0}",
     "pipeline.max_attempts: expected a whole number >= 1, got 0"),
    (S + W + "pipeline: {fetch: [messages, nope]}",
     "pipeline.fetch[1]: expected one of"),
    ("symbl: {base_url: sandbox, app_secret: '${NOT_SET_ANYWHERE}'}\nwatch: [{path: a}]",
     "symbl.app_secret: environment variable NOT_SET_ANYWHERE is not set"),
    (S + "watch: [{path: a, patterns: 3}]",
     "watch[0].patterns: expected a list of strings"),
    (S + "watch: [{path: a, recursive: maybe}]",
     "watch[0].recursive: expected true or false, got 'maybe'"),
    (S + W + "state: {url: 'postgres://x'}",
     "state.url: expected sqlite:///"),
    ("symbl: [1, 2]\nwatch: [{path: a}]", "symbl: expected a mapping"),
    ("- just\n- a list", "expected a mapping at the top level"),
    ("symbl: {base_url: sandbox\nwatch: [", "not valid YAML"),
    (S + "watch: [{path: a, conversation: folder}]",
     "watch[0].conversation: expected a mapping"),
    (S + "watch: [{path: a, poll_interval_seconds: 0}]",
     "watch[0].poll_interval_seconds: expected a number >= 0.1"),
    (S + W + "plugins: [1]", "plugins: expected a list of strings"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "expected"), BROKEN)
def test_broken_config_names_the_key(text: str, expected: str) -> None:
    """Each broken config fails with a message naming the key and what was expected."""
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source="bad.yaml")
    assert any(expected in line for line in caught.value.problems), caught.value.problems
    assert all(line.startswith("bad.yaml") for line in caught.value.problems)


def test_problems_carry_line_numbers() -> None:
    """A problem points at the line of the offending key."""
    text = S + "watch:\n  - path: a\n    settle_seconds: -1\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source="x.yaml")
    assert caught.value.problems == [
        "x.yaml:4: watch[0].settle_seconds: expected a number >= 0, got -1"
    ]


def test_every_problem_is_reported_at_once() -> None:
    """Several problems produce several lines, not just the first."""
    text = "symbl: {}\nwatch: [{path: a, settle_seconds: x, recursive: 1}]\nlogging: {level: loud}"
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    assert len(caught.value.problems) == 4
