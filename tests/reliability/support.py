"""Helpers shared by the reliability tests: counting at the sandbox, the CLI, results.

Every figure a reliability test asserts is counted where it cannot be faked: submissions at
the sandbox (which lives in the test process and survives every daemon kill), states in the
daemon's own database, and result files on disk.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable
from typing import Any

from ingestd.testing import DaemonProcess, IngestdEnv, run_cli, sha256_of, wait_for

TERMINAL = ("done", "failed", "rejected", "duplicate", "dismissed")

sha256 = sha256_of  # what the sandbox reports of each upload
cli = run_cli


def created(sandbox: Any) -> list[dict[str, Any]]:
    """Submissions that created a job, whether or not the daemon heard the answer."""
    return [s for s in sandbox.submissions() if s["created"]]


def created_by_sha(sandbox: Any) -> Counter[str]:
    return Counter(s["sha256"] for s in created(sandbox))


def posts_by_name(sandbox: Any) -> Counter[str]:
    """New conversations (POSTs that created one) per conversation name."""
    return Counter(
        (s.get("params") or {}).get("name") for s in created(sandbox) if s["method"] == "POST"
    )


def rows_by_path(env: IngestdEnv) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for row in env.rows():
        out.setdefault(row["relpath"], []).append(row)
    return out


def states_after_kill(env: IngestdEnv) -> list[str]:
    """Every recording's state, read while no daemon runs. (`IngestdEnv.rows` opens the
    database read-only, which cannot recover the WAL index a SIGKILL left behind, and then
    reads as empty.)"""
    if not env.state_db.exists():
        return []
    conn = sqlite3.connect(env.state_db, timeout=10)
    try:
        return [state for (state,) in conn.execute("SELECT state FROM recordings")]
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()


def wait_terminal(env: IngestdEnv, names: Iterable[str], timeout: float) -> dict[str, str]:
    """Wait until every named file has a terminal state; return relpath -> state."""
    names = list(names)

    def settled() -> bool:
        states = env.states()
        return all(states.get(n) in TERMINAL for n in names)

    try:
        wait_for(settled, timeout, f"{len(names)} files to reach a terminal state", 0.2)
    except AssertionError:
        states = env.states()
        open_ = {n: states.get(n) for n in names if states.get(n) not in TERMINAL}
        raise AssertionError(
            f"not terminal after {timeout:.0f} s: {dict(list(open_.items())[:20])}"
            f"\nlog tail:\n{log_tail(env)}"
        ) from None
    return env.states()


def log_tail(env: IngestdEnv, chars: int = 4000) -> str:
    log = env.root / "daemon.log"
    return log.read_text(errors="replace")[-chars:] if log.exists() else ""


def all_events(env: IngestdEnv) -> list[dict[str, Any]]:
    """Every JSON event of every daemon run in this environment."""
    log = env.root / "daemon.log"
    out = []
    if not log.exists():
        return out
    for line in log.read_text(errors="replace").splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(event, dict):
            out.append(event)
    return out


def results(env: IngestdEnv) -> dict[str, dict[str, Any]]:
    """conversation_id -> the insights.json the files sink wrote for it."""
    out = {}
    for path in env.results.rglob("insights.json"):
        data = json.loads(path.read_text())
        out[data["ingestd"]["conversation_id"]] = data
    return out


def transcript(data: dict[str, Any]) -> str:
    return "\n".join(m.get("text", "") for m in data.get("messages") or [])


class WrappedDaemon(DaemonProcess):
    """The real daemon started through a wrapper command (setpriv, unshare ...)."""

    def __init__(self, env: IngestdEnv, prefix: list[str], extra_env: dict[str, str] | None = None):
        super().__init__(env.config_path, env.root / "daemon.log", extra_env)
        self.prefix = prefix
        env.daemons.append(self)

    def start(self) -> WrappedDaemon:
        self._offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [
                    *self.prefix,
                    sys.executable,
                    "-m",
                    "ingestd.cli",
                    "run",
                    "--config",
                    str(self.config_path),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
            )
        return self


def daemon_with_env(env: IngestdEnv, extra_env: dict[str, str]) -> DaemonProcess:
    """A daemon for `env`'s current config, with extra environment variables."""
    daemon = DaemonProcess(env.config_path, env.root / "daemon.log", extra_env)
    env.daemons.append(daemon)
    return daemon
