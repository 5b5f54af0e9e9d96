"""The command line as a user first meets it: help texts, one-line errors, exit codes."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

from ingestd.store import SqliteStore

ROOT = Path(__file__).resolve().parents[2]
SUBCOMMANDS = ("run", "check", "status", "retry", "redeliver", "map", "plugins", "install-unit")


def ingestd(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ingestd.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )


def minimal_config(tmp_path: Path) -> Path:
    (tmp_path / "inbox").mkdir(exist_ok=True)
    config = {
        "symbl": {"base_url": "sandbox"},
        "state": {"url": "sqlite:///state/state.db"},
        "watch": [{"path": "inbox"}],
        "sinks": [{"type": "files", "path": "results"}],
    }
    path = tmp_path / "ingestd.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_top_level_help_names_every_subcommand() -> None:
    """The description of ``ingestd --help`` lists every subcommand, not an old subset."""
    result = ingestd("--help")
    assert result.returncode == 0
    described = re.search(r"Subcommands: ([^;]*);", " ".join(result.stdout.split()))
    assert described, result.stdout
    offered = re.search(r"\{([a-z,-]+)\}", result.stdout)
    assert offered and set(offered.group(1).split(",")) >= {*SUBCOMMANDS, "sandbox"}
    assert set(described.group(1).split(", ")) == set(offered.group(1).split(","))


def test_sandbox_help_explains_each_option() -> None:
    """Every option of ``ingestd sandbox`` has a sentence and shows its default; the help
    says that its insights are made up."""
    text = " ".join(ingestd("sandbox", "--help").stdout.split())
    for option in ("--host", "--port", "--app-id", "--app-secret", "--job-seconds"):
        assert re.search(rf"{option} \S+ [a-z][^-]+\(default: ", text), option
    for option in ("--concurrency-limit", "--token-lifetime"):
        assert re.search(rf"{option} \S+ [a-z][^-]+\(default: ", text), option
    assert "made up" in text


def test_retry_of_an_unknown_id_is_one_line(tmp_path: Path) -> None:
    """``ingestd retry 999`` says there is no such recording: exit 1, no traceback."""
    config = minimal_config(tmp_path)
    SqliteStore(tmp_path / "state" / "state.db").close()
    result = ingestd("retry", "999", "--config", str(config))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "ingestd: no recording #999 in the state database; `ingestd status` lists them"
    ]
    assert "Traceback" not in result.stdout + result.stderr


def test_setup_says_how_to_put_ingestd_on_path() -> None:
    """scripts/setup ends by naming .venv/bin and the PATH line to use it."""
    result = subprocess.run(
        ["bash", "scripts/setup"], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr
    assert f'export PATH="{ROOT}/.venv/bin:$PATH"' in result.stdout
