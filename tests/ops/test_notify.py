"""The sd_notify protocol of the real daemon, against a fake NOTIFY_SOCKET.

systemd is not PID 1 in the test environment, so the test plays systemd's part: it binds a
unix datagram socket, points NOTIFY_SOCKET at it and sets WATCHDOG_USEC as systemd does for
WatchdogSec=, then runs `ingestd run` and reads what arrives.
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingestd import systemd
from ingestd.testing import drop, wait_for

WATCHDOG_USEC = 400_000  # WatchdogSec=0.4: pings expected every 0.2 s


class NotifySocket:
    """systemd's end of the protocol: every datagram with its arrival time."""

    def __init__(self) -> None:
        # A short path: sun_path holds 107 bytes and pytest's tmp_path can be longer.
        self._dir = tempfile.mkdtemp(prefix="ingestd-notify-")
        self.path = os.path.join(self._dir, "notify")
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(self.path)
        self._sock.settimeout(0.1)
        self.messages: list[tuple[float, list[str]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._sock.recv(4096)
            except TimeoutError:
                continue
            self.messages.append((time.monotonic(), data.decode().split("\n")))

    def lines(self) -> list[str]:
        return [line for _, lines in list(self.messages) for line in lines]

    def times(self, line: str) -> list[float]:
        return [at for at, lines in list(self.messages) if line in lines]

    def first(self, line: str) -> int | None:
        """Index of the first datagram holding `line`."""
        for i, (_, lines) in enumerate(list(self.messages)):
            if line in lines:
                return i
        return None

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._sock.close()
        os.unlink(self.path)
        os.rmdir(self._dir)


@pytest.fixture
def notify_socket() -> Iterator[NotifySocket]:
    sock = NotifySocket()
    try:
        yield sock
    finally:
        sock.close()


def status_counts(line: str) -> dict[str, int]:
    """'STATUS=1 in progress, 2 done, 0 failed, 0 settling' -> {'in progress': 1, ...}."""
    body = line.removeprefix("STATUS=")
    return {m.group(2): int(m.group(1)) for m in re.finditer(r"(\d+) ([a-z ]+?)(?:,|$)", body)}


class TestNotifyProtocol:
    def test_ready_status_watchdog_reloading_stopping(
        self, ingestd_env, make_media, notify_socket: NotifySocket
    ) -> None:
        """READY=1 after the watchers and the startup rescan, STATUS= with queue counts,
        WATCHDOG=1 every WatchdogSec/2, RELOADING=1 then READY=1 on SIGHUP, STOPPING=1 on
        SIGTERM and nothing after it."""
        drop(make_media("early.wav", seconds=1), ingestd_env.inbox)  # found by the rescan
        daemon = ingestd_env.daemon()
        daemon.env["NOTIFY_SOCKET"] = notify_socket.path
        daemon.env["WATCHDOG_USEC"] = str(WATCHDOG_USEC)
        daemon.env.pop("WATCHDOG_PID", None)  # the pid is unknown before the fork
        daemon.start()

        wait_for(lambda: notify_socket.first("READY=1") is not None, 30, "READY=1")
        # By READY=1 the watcher runs and the rescan is done, both logged before the notify.
        log_at_ready = daemon.log_text()
        assert '"rescan_finished"' in log_at_ready and '"files": 1' in log_at_ready
        ready = notify_socket.messages[notify_socket.first("READY=1")][1]
        assert any(line.startswith("STATUS=") for line in ready), ready
        assert notify_socket.first("READY=1") == 0, "nothing is sent before READY=1"

        drop(make_media("late.wav", seconds=1), ingestd_env.inbox)  # seen by the watcher
        ingestd_env.wait_states({"early.wav": "done", "late.wav": "done"})

        def two_done() -> bool:
            statuses = [s for s in notify_socket.lines() if s.startswith("STATUS=")]
            return bool(statuses) and status_counts(statuses[-1]).get("done") == 2

        wait_for(two_done, 10, "a STATUS= line counting 2 done")
        last = [s for s in notify_socket.lines() if s.startswith("STATUS=")][-1]
        assert status_counts(last) == {"in progress": 0, "done": 2, "failed": 0, "settling": 0}

        pings = notify_socket.times("WATCHDOG=1")
        assert len(pings) >= 5, notify_socket.lines()[-10:]
        gaps = [b - a for a, b in itertools.pairwise(pings)]
        half = WATCHDOG_USEC / 1e6 / 2
        assert half * 0.7 <= statistics.median(gaps) <= half * 2, gaps
        assert max(gaps) < 2.0, "pings keep coming while recordings are processed"

        before = len(notify_socket.messages)
        daemon.process.send_signal(signal.SIGHUP)
        wait_for(
            lambda: "READY=1" in [x for _, m in notify_socket.messages[before:] for x in m],
            10,
            "READY=1 after a reload",
        )
        after_hup = [line for _, m in notify_socket.messages[before:] for line in m]
        assert after_hup.index("RELOADING=1") < after_hup.index("READY=1")

        assert daemon.stop() == 0
        stopping = notify_socket.first("STOPPING=1")
        assert stopping is not None, notify_socket.lines()[-5:]
        after = [line for _, m in notify_socket.messages[stopping + 1 :] for line in m]
        assert "WATCHDOG=1" not in after and "READY=1" not in after

    def test_status_follows_the_counts_between_watchdog_pings(
        self, ingestd_env, make_media, notify_socket: NotifySocket
    ) -> None:
        """With WatchdogSec=60 (a ping every 30 s), STATUS= still shows a finished recording
        within seconds: it is sent when the counts change, not only with WATCHDOG=1."""
        daemon = ingestd_env.daemon()
        daemon.env["NOTIFY_SOCKET"] = notify_socket.path
        daemon.env["WATCHDOG_USEC"] = "60000000"
        daemon.env.pop("WATCHDOG_PID", None)
        daemon.start()
        wait_for(lambda: notify_socket.first("READY=1") is not None, 30, "READY=1")
        drop(make_media("one.wav", seconds=1), ingestd_env.inbox)
        ingestd_env.wait_states({"one.wav": "done"})

        def shows_done() -> bool:
            statuses = [s for s in notify_socket.lines() if s.startswith("STATUS=")]
            return status_counts(statuses[-1]).get("done") == 1

        wait_for(shows_done, 5, "a STATUS= line counting 1 done")
        assert notify_socket.first("WATCHDOG=1") is None, "no ping yet: the status came alone"
        assert daemon.stop() == 0


class TestWatchdogInterval:
    def test_half_of_watchdog_usec(self, monkeypatch) -> None:
        """WATCHDOG_USEC=400000 means a ping every 0.2 s."""
        monkeypatch.setenv("WATCHDOG_USEC", "400000")
        monkeypatch.delenv("WATCHDOG_PID", raising=False)
        assert systemd.watchdog_interval_seconds() == pytest.approx(0.2)

    def test_watchdog_pid_of_this_process(self, monkeypatch) -> None:
        """WATCHDOG_PID naming this process keeps the watchdog on."""
        monkeypatch.setenv("WATCHDOG_USEC", "60000000")
        monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
        assert systemd.watchdog_interval_seconds() == pytest.approx(30)

    def test_watchdog_of_another_process(self, monkeypatch) -> None:
        """WATCHDOG_PID naming another process (we are its child): not ours to feed."""
        monkeypatch.setenv("WATCHDOG_USEC", "60000000")
        monkeypatch.setenv("WATCHDOG_PID", "1")
        assert systemd.watchdog_interval_seconds() is None

    def test_notify_abstract_socket(self, monkeypatch) -> None:
        """An @-address is the abstract namespace, as systemd may hand out."""
        name = f"ingestd-test-{os.getpid()}-{time.monotonic_ns()}"
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind("\0" + name)
            monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
            assert systemd.notify("READY=1", "STATUS=ok") is True
            assert sock.recv(100) == b"READY=1\nSTATUS=ok"

    def test_notify_without_socket(self, monkeypatch) -> None:
        monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
        assert systemd.notify("READY=1") is False

    def test_notify_to_a_vanished_socket(self, monkeypatch, tmp_path: Path) -> None:
        """A socket that went away is not an error worth dying for."""
        monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone"))
        assert systemd.notify("WATCHDOG=1") is False
