"""The core's transcode runner: killable, time-limited, never leaves half-written output."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ingestd import transcode
from ingestd.errors import Permanent, Retryable
from ingestd.model import TranscodePlan
from ingestd.testing import wait_for
from ingestd.transcode import clean_work_files, output_path, remove_output, run_plan


def plan(code: str, timeout: float | None = None) -> TranscodePlan:
    """A plan whose "ffmpeg" is a Python snippet given {input} and {output} as argv."""
    return TranscodePlan(
        argv=(sys.executable, "-c", code, "{input}", "{output}"),
        suffix=".wav",
        description="test plan",
        reencodes=True,
        timeout_seconds=timeout,
    )


COPY = "import shutil, sys; shutil.copyfile(sys.argv[1], sys.argv[2])"
HANG = (
    "import os, sys, time; open(sys.argv[2], 'wb').write(b'half');"
    "open(sys.argv[2] + '.pid', 'w').write(str(os.getpid())); time.sleep(60)"
)


PARENT_DEATH_SIGNAL = (  # prctl(PR_GET_PDEATHSIG) of the transcoder, written as its output
    "import ctypes, sys; sig = ctypes.c_int(-1);"
    "ctypes.CDLL(None, use_errno=True).prctl(2, ctypes.byref(sig), 0, 0, 0);"
    "open(sys.argv[2], 'w').write(str(sig.value))"
)
DAEMON = """
import asyncio, sys
from pathlib import Path
from ingestd.model import TranscodePlan
from ingestd.transcode import run_plan
plan = TranscodePlan((sys.executable, "-c", sys.argv[1], "{input}", "{output}"), ".wav", "t", True)
asyncio.run(run_plan(plan, Path(sys.argv[2]), Path(sys.argv[3])))
"""
"""A stand-in daemon: runs one plan from its event loop, as the pipeline does."""


def alive(pid: int) -> bool:
    """Whether `pid` still runs (a zombie waiting for its reaper does not)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


class TestRunPlan:
    def test_output_appears_only_when_complete(self, tmp_path: Path) -> None:
        """A successful run renames the partial output into place."""
        source = tmp_path / "in.bin"
        source.write_bytes(b"abc")
        out = run_async(run_plan(plan(COPY), source, tmp_path / "work" / "1.wav"))
        assert out.read_bytes() == b"abc"
        assert [p.name for p in out.parent.iterdir()] == ["1.wav"]

    def test_timeout_kills_the_process_and_removes_the_partial(self, tmp_path: Path) -> None:
        """A hung transcoder is killed at its timeout; the half file is gone; Retryable."""
        source = tmp_path / "in.bin"
        source.write_bytes(b"abc")
        target = tmp_path / "work" / "2.wav"
        with pytest.raises(Retryable, match="timed out"):
            run_async(run_plan(plan(HANG, timeout=1.0), source, target))
        pid = int(next(target.parent.glob("*.pid")).read_text())
        assert not alive(pid)
        assert not list(target.parent.glob("*.partial.wav"))
        assert not target.exists()

    def test_cancellation_kills_the_process(self, tmp_path: Path) -> None:
        """Shutdown cancels the stage: the subprocess dies with it."""
        source = tmp_path / "in.bin"
        source.write_bytes(b"abc")
        target = tmp_path / "work" / "3.wav"

        async def cancel_soon() -> None:
            task = asyncio.create_task(run_plan(plan(HANG), source, target))
            while not list(target.parent.glob("*.pid")):
                await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        run_async(cancel_soon())
        pid = int(next(target.parent.glob("*.pid")).read_text())
        assert not alive(pid)
        assert not list(target.parent.glob("*.partial.wav"))

    def test_transcoder_gets_sigkill_when_its_parent_dies(self, tmp_path: Path) -> None:
        """The transcoder is started with SIGKILL as its parent-death signal (Linux)."""
        source = tmp_path / "in.bin"
        source.write_bytes(b"abc")
        out = run_async(run_plan(plan(PARENT_DEATH_SIGNAL), source, tmp_path / "w" / "6.wav"))
        assert out.read_text() == str(int(signal.SIGKILL))

    def test_a_killed_daemon_takes_its_transcoder_along(self, tmp_path: Path) -> None:
        """SIGKILL the process running a plan: the transcoder (its own session) dies too."""
        source = tmp_path / "in.bin"
        source.write_bytes(b"abc")
        target = tmp_path / "work" / "7.wav"
        daemon = subprocess.Popen([sys.executable, "-c", DAEMON, HANG, str(source), str(target)])
        try:
            pid_file = wait_for(
                lambda: next(target.parent.glob("*.pid"), None), 30, "the transcoder to start"
            )
            pid = int(wait_for(pid_file.read_text, 5, "its pid"))
        finally:
            daemon.kill()
            daemon.wait()
        deadline = time.monotonic() + 5
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
            pytest.fail("the transcoder outlived its SIGKILLed daemon")

    def test_a_child_whose_daemon_is_already_gone_kills_itself(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The daemon dying between fork and prctl would leave no signal to come: the child
        sees it has another parent and stops before running anything."""
        with monkeypatch.context() as patch:
            patch.setattr(os, "getpid", lambda: 1)  # a "daemon" that is not our parent
            preexec = transcode._dies_with_daemon()
        assert preexec is not None
        child = subprocess.Popen([sys.executable, "-c", "pass"], preexec_fn=preexec)
        assert child.wait(timeout=30) == -signal.SIGKILL

    def test_failure_is_permanent_with_the_last_stderr_line(self, tmp_path: Path) -> None:
        """A failing transcoder's last error line reaches the user."""
        code = "import sys; sys.stderr.write('noise\\nInvalid data found\\n'); sys.exit(1)"
        with pytest.raises(Permanent, match="Invalid data found"):
            run_async(run_plan(plan(code), tmp_path / "x", tmp_path / "w" / "4.wav"))

    def test_disk_full_is_retryable(self, tmp_path: Path) -> None:
        """ffmpeg reporting a full disk is a transient problem, retried later."""
        code = "import sys; sys.stderr.write('Error: No space left on device\\n'); sys.exit(1)"
        with pytest.raises(Retryable, match="disk full"):
            run_async(run_plan(plan(code), tmp_path / "x", tmp_path / "w" / "5.wav"))


class TestCleanup:
    def test_start_up_removes_partials_and_orphans(self, tmp_path: Path) -> None:
        """Half-written files and outputs of finished recordings are deleted; others kept."""
        folder = tmp_path / "transcode"
        folder.mkdir()
        for name in ("1.wav", "2.partial.wav", "3.mp4", "junk.txt"):
            (folder / name).write_bytes(b"x")
        removed = clean_work_files(tmp_path, still_needed=lambda rid: rid == 1)
        assert removed == 3
        assert sorted(p.name for p in folder.iterdir()) == ["1.wav"]

    def test_remove_output_never_touches_originals(self, tmp_path: Path) -> None:
        """Only files inside the work directory's transcode folder are deleted."""
        original = tmp_path / "inbox" / "a.wav"
        original.parent.mkdir()
        original.write_bytes(b"x")
        remove_output(tmp_path / "work", str(original))
        assert original.exists()
        copy = output_path(tmp_path / "work", 7, plan(COPY))
        copy.parent.mkdir(parents=True)
        copy.write_bytes(b"x")
        remove_output(tmp_path / "work", str(copy))
        assert not copy.exists()


def run_async(coroutine):
    return asyncio.run(coroutine)
