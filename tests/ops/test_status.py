"""`ingestd status`: the table and --json, read from the state store after a real run."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

from ingestd.lifecycle import State
from ingestd.store import SqliteStore
from ingestd.testing import drop


def status(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ingestd.cli", "status", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def table_counts(text: str) -> dict[str, int]:
    """The 'state count' block of the table."""
    counts: dict[str, int] = {}
    for line in text.splitlines()[1:]:
        match = re.fullmatch(r"(\w+)\s+(\d+)", line)
        if not match:
            break
        counts[match.group(1)] = int(match.group(2))
    return counts


class TestStatusAfterARun:
    def test_table_and_json(self, ingestd_env, make_media) -> None:
        """Two recordings done, one rejected: the table, the failure and the JSON agree."""
        daemon = ingestd_env.daemon().start()
        daemon.wait_ready()
        drop(make_media("call.wav", seconds=1), ingestd_env.inbox)
        drop(make_media("memo.mp3", seconds=1), ingestd_env.inbox)
        broken = ingestd_env.root / "broken.wav"
        broken.write_bytes(b"RIFF this is no wav" * 64)
        drop(broken, ingestd_env.inbox)
        ingestd_env.wait_states({"call.wav": "done", "memo.mp3": "done", "broken.wav": "rejected"})
        assert daemon.stop() == 0

        result = status(ingestd_env.config_path)
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines()[0].split() == ["state", "count"]
        expected = {str(s): 0 for s in State} | {"done": 2, "rejected": 1}
        assert table_counts(result.stdout) == expected
        assert "\x1b[" not in result.stdout
        failures = result.stdout.split("latest failures\n", 1)[1].splitlines()
        assert re.match(r"  #\d+\s+rejected .*inbox/broken\.wav$", failures[0]), failures
        assert failures[1].strip(), "the reason is printed under the failure"
        assert "in progress" not in result.stdout

        result = status(ingestd_env.config_path, "--json")
        assert result.returncode == 0, result.stderr
        data = json.loads(result.stdout)
        assert data["counts"] == expected
        assert data["in_progress"] == []
        [failure] = data["failures"]
        assert (failure["path"], failure["state"], failure["watch"]) == (
            "broken.wav",
            "rejected",
            "inbox",
        )
        assert failure["error"]

    def test_work_in_progress_and_retry_time(self, ingestd_env) -> None:
        """A recording backing off is listed in progress with the time of its next try."""
        config = ingestd_env.write_config()
        store = SqliteStore(ingestd_env.state_db)
        try:
            row = store.insert(
                watch="inbox",
                watch_root=str(ingestd_env.inbox),
                relpath="sales/q3.wav",
                size_bytes=10,
                mtime=1.0,
                sha256="ab",
            )
            store.update(row.id, attempts=2, next_attempt_at=time.time() + 3600)
        finally:
            store.close()
        result = status(config)
        assert result.returncode == 0, result.stderr
        block = result.stdout.split("in progress\n", 1)[1].splitlines()
        line = rf"  #{row.id}\s+discovered\s+inbox/sales/q3\.wav \(retry at \d{{4}}-\d\d-\d\d "
        assert re.match(line, block[0]), block
        data = json.loads(status(config, "--json").stdout)
        assert [r["path"] for r in data["in_progress"]] == ["sales/q3.wav"]
        assert data["in_progress"][0]["attempts"] == 2

    def test_no_database_yet(self, ingestd_env) -> None:
        """Before the first run: one line saying so, exit 69 (unavailable)."""
        result = status(ingestd_env.write_config())
        assert result.returncode == 69
        assert "no state database" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
