"""The systemd units: exposure score, offline verification, template in step, sandbox fit.

systemd is not PID 1 in the test environment, so here `confine.py` applies the kernel-side
half of the unit's sandbox (seccomp syscall filter, W^X, address families, no capabilities,
umask) to the real daemon, and test_notify.py speaks the notify protocol over a fake
NOTIFY_SOCKET. tests/systemd runs the installed unit under a real systemd in a container.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from ingestd.installunit import render_unit
from ingestd.testing import DaemonProcess, drop
from tests.ops import confine

REPO = Path(__file__).resolve().parents[2]
UNITS = REPO / "systemd"
SYSTEMD_ANALYZE = "/usr/bin/systemd-analyze"
MAX_EXPOSURE = 2.0
SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    """Run systemd-analyze; a missing binary fails the test, it never skips."""
    assert Path(SYSTEMD_ANALYZE).exists(), (
        f"{SYSTEMD_ANALYZE} is missing: install Debian's systemd package (apt-get install "
        f"systemd) — the unit's exposure score cannot be checked without it"
    )
    return subprocess.run(
        [SYSTEMD_ANALYZE, *args], capture_output=True, text=True, timeout=60, check=False
    )


def exposure(unit: Path) -> float:
    result = analyze("security", "--offline=true", "--no-pager", str(unit))
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, f"no score in systemd-analyze output:\n{result.stdout}\n{result.stderr}"
    return float(match.group(1))


def service_lines(unit: Path) -> list[str]:
    """Directive lines of [Service], without comments."""
    lines, inside = [], False
    for line in unit.read_text().splitlines():
        if line.startswith("["):
            inside = line == "[Service]"
        elif inside and line and not line.startswith("#"):
            lines.append(line)
    return lines


@pytest.fixture
def installed_units(tmp_path: Path) -> Path:
    """The units as install-unit writes them: ExecStart at this checkout's ingestd."""
    executable = Path(sys.executable).parent / "ingestd"
    assert executable.exists(), f"{executable} missing: is ingestd installed in the venv?"
    for unit in ("ingestd.service", "ingestd@.service"):
        text = render_unit((UNITS / unit).read_text(), executable)
        (tmp_path / unit).write_text(text)
    (tmp_path / "ingestd@sales.service").write_text((tmp_path / "ingestd@.service").read_text())
    return tmp_path


class TestExposure:
    @pytest.mark.parametrize("unit", ["ingestd.service", "ingestd@.service"])
    def test_score_is_at_most_2(self, unit: str) -> None:
        """systemd-analyze security --offline=true rates each shipped unit 2.0 or lower."""
        assert exposure(UNITS / unit) <= MAX_EXPOSURE

    def test_instance_score_and_threshold(self, installed_units: Path) -> None:
        """An instance of the template scores the same, and --threshold agrees (20 = 2.0)."""
        unit = installed_units / "ingestd@sales.service"
        assert exposure(unit) <= MAX_EXPOSURE
        result = analyze("security", "--offline=true", "--threshold=20", str(unit))
        assert result.returncode == 0, result.stdout[-2000:]


class TestVerify:
    @pytest.mark.parametrize("unit", ["ingestd.service", "ingestd@sales.service"])
    def test_verify_is_clean(self, installed_units: Path, unit: str) -> None:
        """systemd-analyze verify accepts the installed unit without a single warning."""
        result = analyze("verify", str(installed_units / unit))
        assert result.returncode == 0, result.stderr
        assert result.stderr.strip() == ""

    def test_shipped_exec_start_is_opt(self) -> None:
        """The shipped unit runs /opt/ingestd's venv; install-unit rewrites it."""
        assert (
            "ExecStart=/opt/ingestd/bin/ingestd run --config /etc/ingestd/ingestd.yaml"
            in service_lines(UNITS / "ingestd.service")
        )


class TestTemplate:
    def test_template_differs_only_by_instance(self) -> None:
        """ingestd@.service is ingestd.service with %i in the per-instance lines only."""
        single = service_lines(UNITS / "ingestd.service")
        template = service_lines(UNITS / "ingestd@.service")
        per_instance = {
            "ExecStart": "ExecStart=/opt/ingestd/bin/ingestd run --config /etc/ingestd/%i.yaml",
            "StateDirectory": "StateDirectory=ingestd/%i",
            "WorkingDirectory": "WorkingDirectory=/var/lib/ingestd/%i",
            "LoadCredential": (
                "LoadCredential=%i.symbl_app_secret:/etc/ingestd/%i.symbl_app_secret"
            ),
        }
        expected = [per_instance.get(line.split("=", 1)[0], line) for line in single]
        assert template == expected

    def test_notify_and_restart_policy(self) -> None:
        """Type=notify with a watchdog, restarts on failure, but never on a bad config."""
        lines = set(service_lines(UNITS / "ingestd.service"))
        for line in (
            "Type=notify",
            "NotifyAccess=main",
            "WatchdogSec=60",
            "Restart=on-failure",
            "RestartPreventExitStatus=78",
            "User=ingestd",
            "ProtectSystem=strict",
            "MemoryDenyWriteExecute=yes",
            "CapabilityBoundingSet=",
        ):
            assert line in lines

    def test_sysusers_entry(self) -> None:
        """The sysusers.d file declares the same account install-unit creates."""
        text = (UNITS / "sysusers.d" / "ingestd.conf").read_text()
        entry = [line for line in text.splitlines() if line.startswith("u ")]
        assert entry and entry[0].split()[1] == "ingestd"
        assert "/var/lib/ingestd" in entry[0] and "/usr/sbin/nologin" in entry[0]


# -- the unit's sandbox, applied without systemd ---------------------------------------------


def confined(argv: list[str], unit: Path = UNITS / "ingestd.service") -> list[str]:
    return [sys.executable, str(Path(confine.__file__)), str(unit), "--", *argv]


@pytest.fixture
def confinement() -> None:
    reason = confine.supported()
    if reason:
        pytest.skip(reason)
    assert Path(SYSTEMD_ANALYZE).exists(), f"{SYSTEMD_ANALYZE} is missing"


PROBE = """
import ctypes, errno, os, socket
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
page = libc.mmap(None, 4096, 7, 0x22, -1, 0)  # PROT_READ|WRITE|EXEC, private anonymous
failed = page in (None, 2**64 - 1)
print("mmap_wx", errno.errorcode[ctypes.get_errno()] if failed else "allowed")
for name in ("AF_NETLINK", "AF_INET6"):
    try:
        socket.socket(getattr(socket, name), socket.SOCK_DGRAM).close()
        print(name, "allowed")
    except OSError as exc:
        print(name, errno.errorcode[exc.errno])
try:
    os.sched_setaffinity(0, {0})
    print("sched_setaffinity", "allowed")
except OSError as exc:
    print("sched_setaffinity", errno.errorcode[exc.errno])
print("umask", oct(os.umask(0)))
print("callback", ctypes.CFUNCTYPE(ctypes.c_int)(lambda: 7)())
"""


class TestSandboxFit:
    def test_harness_enforces_the_unit(self, confinement: None) -> None:
        """The emulation really applies W^X, families, @resources and UMask (no false pass)."""
        result = subprocess.run(
            confined([sys.executable, "-c", PROBE]), capture_output=True, text=True, timeout=30
        )
        assert result.returncode == 0, result.stderr
        seen = dict(line.split(" ", 1) for line in result.stdout.splitlines())
        assert seen == {
            "mmap_wx": "EPERM",
            "AF_NETLINK": "EAFNOSUPPORT",
            "AF_INET6": "allowed",
            "sched_setaffinity": "EPERM",
            "umask": "0o27",
            "callback": "7",  # ctypes (watchdog's inotify binding) works under W^X
        }

    def test_daemon_runs_inside_the_unit_sandbox(
        self, confinement: None, ingestd_env, make_media
    ) -> None:
        """Under the unit's seccomp filter and W^X the daemon watches, runs ffmpeg on a flac
        and a mov, uploads, and delivers; SIGTERM still exits 0."""
        ingestd_env.write_config()
        env = {"PATH": SYSTEMD_PATH}  # systemd's PATH: the bundled static ffmpeg
        daemon = ConfinedDaemon(ingestd_env.config_path, ingestd_env.root / "daemon.log", env)
        ingestd_env.daemons.append(daemon)
        daemon.start().wait_ready()
        for name in ("memo.flac", "clip.mov", "call.wav"):
            drop(make_media(name, seconds=1), ingestd_env.inbox)
        ingestd_env.wait_states({"memo.flac": "done", "clip.mov": "done", "call.wav": "done"})
        uploads = {r["relpath"]: Path(r["upload_path"]).suffix for r in ingestd_env.rows()}
        assert uploads == {"memo.flac": ".wav", "clip.mov": ".mp4", "call.wav": ".wav"}
        status = Path(f"/proc/{daemon.process.pid}/status").read_text()
        assert re.search(r"^Seccomp:\s+2$", status, re.M), "the daemon runs under the filter"
        assert re.search(r"^NoNewPrivs:\s+1$", status, re.M)
        assert "Operation not permitted" not in daemon.log_text()
        assert daemon.stop() == 0


class ConfinedDaemon(DaemonProcess):
    """`ingestd run` exec'd through confine.py with the shipped unit's limits."""

    def start(self) -> ConfinedDaemon:
        self._offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        argv = [sys.executable, "-m", "ingestd.cli", "run", "--config", str(self.config_path)]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                confined(argv), stdout=log, stderr=subprocess.STDOUT, env=self.env
            )
        return self
