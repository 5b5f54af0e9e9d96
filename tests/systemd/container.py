"""A Debian 12 container booted with systemd-nspawn: a real systemd as PID 1 for the unit.

The host needs no systemd of its own: ``--register=no --keep-unit`` stop nspawn from asking
a host systemd for a machine registration or a scope. The tree (scripts/nspawn-tree) is cached
and booted with ``--volatile=overlay``, so every boot starts from the same clean system and
nothing is written to the cache. Commands run inside with ``nsenter -t <container's PID 1>
-a``, with a clean environment; the container's files are reached from the host through
``/proc/<PID 1>/root``.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class NspawnError(AssertionError):
    """The container could not be built or booted: a failure, never a skip."""


def debian_tree() -> Path:
    """The cached Debian tree, built (and its tools installed) by scripts/nspawn-tree."""
    result = subprocess.run(
        [str(REPO / "scripts/nspawn-tree")], capture_output=True, text=True, timeout=1800
    )
    if result.returncode != 0:
        raise NspawnError(
            f"scripts/nspawn-tree failed ({result.returncode}); the systemd suite needs "
            f"systemd-nspawn and debootstrap as root:\n{result.stderr[-3000:]}"
        )
    return Path(result.stdout.strip().splitlines()[-1])


class Container:
    """One booted container; `sh` runs a shell script inside, `path` maps a path into it."""

    def __init__(
        self,
        tree: Path,
        log: Path,
        binds: Mapping[str, Path] = {},
        read_only_binds: Mapping[str, Path] = {},
    ) -> None:
        self.tree = tree
        self.log = log
        self.machine = f"ingestd-test-{os.getpid()}"
        self.binds = dict(binds)
        self.read_only_binds = dict(read_only_binds)
        self.process: subprocess.Popen[bytes] | None = None
        self.pid1 = 0

    # -- lifecycle ------------------------------------------------------------------------

    def boot(self, timeout: float = 120) -> float:
        """Boot and wait until systemd says the system is running; returns the seconds."""
        started = time.monotonic()
        command = [
            "systemd-nspawn",
            "--quiet",
            "--boot",
            "--register=no",
            "--keep-unit",
            "--volatile=overlay",
            "--console=read-only",
            f"--machine={self.machine}",
            f"--directory={self.tree}",
            *(f"--bind={host}:{inside}" for inside, host in self.binds.items()),
            *(f"--bind-ro={host}:{inside}" for inside, host in self.read_only_binds.items()),
        ]
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = started + timeout
        while not self.pid1:
            self._died_while("booting")
            self.pid1 = self._child_systemd()
            if time.monotonic() > deadline:
                raise NspawnError(f"no systemd in the container after {timeout} s:\n{self.tail()}")
            time.sleep(0.1)
        while True:
            self._died_while("booting")
            state = self.sh("systemctl is-system-running", check=False).stdout.strip()
            if state in ("running", "degraded"):
                break
            if time.monotonic() > deadline:
                raise NspawnError(f"the container's systemd is {state!r} after {timeout} s")
            time.sleep(0.2)
        if state == "degraded":
            failed = self.sh("systemctl --failed --no-legend", check=False).stdout
            raise NspawnError(f"the container booted degraded; failed units:\n{failed}")
        return time.monotonic() - started

    def poweroff(self, timeout: float = 60) -> None:
        """A clean shutdown (nspawn turns SIGTERM into the container's poweroff)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def _child_systemd(self) -> int:
        assert self.process is not None
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[1]) == self.process.pid and "(systemd)" in stat:
                return int(entry.name)
        return 0

    def _died_while(self, doing: str) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            raise NspawnError(
                f"systemd-nspawn exited with {self.process.returncode} while {doing}:\n"
                f"{self.tail()}"
            )

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    # -- inside -----------------------------------------------------------------------------

    def sh(
        self, script: str, *, check: bool = True, timeout: float = 120, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run `script` with /bin/sh inside the container, as root with a clean environment."""
        self._died_while(f"running {script!r}")
        command = [
            "nsenter",
            "-t",
            str(self.pid1),
            "-a",
            "env",
            "-i",
            f"PATH={PATH}",
            "LANG=C.UTF-8",
            "SYSTEMD_PAGER=",
            "SYSTEMD_COLORS=0",
            "/bin/sh",
            "-c",
            script,
        ]
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, input=input
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"in the container: {script}\nexit {result.returncode}\n"
                f"{result.stdout[-3000:]}{result.stderr[-3000:]}"
            )
        return result

    def run(self, *argv: str, check: bool = True, timeout: float = 120) -> str:
        """Run one command inside; its stdout."""
        return self.sh(shlex.join(argv), check=check, timeout=timeout).stdout

    def path(self, inside: str) -> Path:
        """A path in the container, as the host reaches it."""
        return Path(f"/proc/{self.pid1}/root") / inside.lstrip("/")

    def write(self, inside: str, text: str, mode: int = 0o644) -> None:
        target = self.path(inside)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        target.chmod(mode)

    # -- systemd --------------------------------------------------------------------------

    def show(self, unit: str, *properties: str) -> dict[str, str]:
        """``systemctl show -p ...`` as a dict."""
        out = self.run("systemctl", "show", unit, *(f"--property={p}" for p in properties))
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def main_pid(self, unit: str) -> int:
        """The unit's main PID as the container sees it (0 when not running)."""
        return int(self.show(unit, "MainPID")["MainPID"])
