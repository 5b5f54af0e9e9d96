"""Running a transcode plan: a killable ffmpeg subprocess with a timeout, in the work dir.

The plan comes from a plugin (`ingestd_transcode_plan`); the core owns the process so a
codec crash or hang cannot take the daemon down, a timeout or shutdown kills it, and a
half-written output never survives (it is written under a temporary name and renamed).
On Linux the kernel also kills it when the daemon dies without a shutdown (SIGKILL, OOM
kill, a crash), so no orphaned ffmpeg keeps working for a daemon that is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import os
import re
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from ingestd import executables, progress
from ingestd.errors import DiskFull, Permanent, Retryable
from ingestd.model import TranscodePlan

DEFAULT_TIMEOUT_SECONDS = 3600.0
_STDERR_TAIL = 4000
_NO_SPACE = os.strerror(errno.ENOSPC)  # "No space left on device", as ffmpeg prints it
_STATS_TIME = re.compile(rb"time=(\d+):(\d\d):(\d\d(?:\.\d+)?)")  # ffmpeg's stats line


def output_path(work_dir: Path, recording_id: int, plan: TranscodePlan) -> Path:
    return work_dir / "transcode" / f"{recording_id}{plan.suffix}"


async def run_plan(plan: TranscodePlan, source: Path, output: Path) -> Path:
    """Run `plan` from `source` into `output`; return `output` once complete.

    Raises DiskFull for a full work directory, Retryable for a timeout or a missing
    program, Permanent when ffmpeg fails.
    """
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise _disk_full(output.parent, "while creating it") from None
        raise
    partial = output.with_name(f"{output.stem}.partial{output.suffix}")
    partial.unlink(missing_ok=True)
    argv = [
        str(source) if a == "{input}" else str(partial) if a == "{output}" else a for a in plan.argv
    ]
    timeout = plan.timeout_seconds or DEFAULT_TIMEOUT_SECONDS
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # a Ctrl-C to the daemon's terminal does not reach ffmpeg
            preexec_fn=_dies_with_daemon(),
        )
    except OSError as exc:
        raise executables.cannot_run(argv[0], exc) from None
    except BaseException:  # cancelled while starting: asyncio kills the child it had spawned,
        partial.unlink(missing_ok=True)  # which may have begun writing already
        raise
    try:
        stderr = await asyncio.wait_for(_stderr_until_exit(process, source), timeout)
    except TimeoutError:
        _kill(process)
        await process.wait()
        partial.unlink(missing_ok=True)
        raise Retryable(f"ffmpeg timed out after {timeout:.0f} s ({plan.description})") from None
    except BaseException:  # cancelled at shutdown: never leave ffmpeg running
        _kill(process)
        with contextlib.suppress(Exception):
            await asyncio.shield(process.wait())
        partial.unlink(missing_ok=True)
        raise
    finally:
        progress.transcode_ended(source)
    text = stderr.decode(errors="replace")
    if process.returncode != 0 or _NO_SPACE in text:
        partial.unlink(missing_ok=True)
        if _NO_SPACE in text:  # ffmpeg 6 exits 0 when only its trailer could not be written
            raise _disk_full(output.parent, "while transcoding")
        tail = text[-_STDERR_TAIL:].strip()
        last = tail.splitlines()[-1] if tail else f"exit status {process.returncode}"
        raise Permanent(f"ffmpeg failed ({plan.description}): {last}")
    try:
        _sync(partial)
        os.replace(partial, output)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise _disk_full(output.parent, "while saving the transcoded file") from None
        raise
    return output


async def _stderr_until_exit(process: asyncio.subprocess.Process, source: Path) -> bytes:
    """ffmpeg's whole stderr once it exits, noting each ``time=`` of its stats lines on the
    way (`ingestd.progress`, for the dashboard's queue)."""
    assert process.stderr is not None
    text = bytearray()
    while chunk := await process.stderr.read(1 << 16):
        text += chunk
        times = _STATS_TIME.findall(chunk)
        if times:
            hours, minutes, seconds = times[-1]
            progress.transcode_at(source, int(hours) * 3600 + int(minutes) * 60 + float(seconds))
    await process.wait()
    return bytes(text)


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _prctl() -> Callable[..., int] | None:
    """libc's prctl(2), or None off Linux (or where libc cannot be loaded)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return prctl


_PRCTL = _prctl()  # resolved here: the forked child should only call it


def _dies_with_daemon() -> Callable[[], None] | None:
    """A ``preexec_fn`` making the child get SIGKILL when the daemon dies (Linux only).

    ``start_new_session`` keeps ffmpeg out of the daemon's process group, so without this a
    SIGKILLed daemon leaves it running to its end, or forever when it hangs, unless
    systemd's cgroup kill happens to clean up. The parent-death signal fires when the
    *thread* that forked exits, not the process: that thread is the event loop's here
    (`asyncio.create_subprocess_exec` forks on the calling thread, and `run_plan` is
    awaited on the loop), which lives as long as the daemon. Call `run_plan` only from a
    loop that outlives the run, never from a short-lived worker thread's loop.
    """
    prctl = _PRCTL
    if prctl is None:
        return None
    daemon_pid = os.getpid()

    def set_parent_death_signal() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        # The daemon may have died between fork and prctl: the signal would never come.
        if os.getppid() != daemon_pid:
            signal.raise_signal(signal.SIGKILL)

    return set_parent_death_signal


def _sync(path: Path) -> None:
    """Flush the finished output: a full disk may only show when delayed writes land."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _disk_full(folder: Path, doing: str) -> DiskFull:
    return DiskFull(
        f"disk full in the work directory {folder} {doing}; waiting for free space there"
    )


def _kill(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        process.kill()


def clean_work_files(work_dir: Path, still_needed: Callable[[int], bool]) -> int:
    """Delete half-written outputs a crash left, and outputs no recording needs any more.

    Returns how many files were removed.
    """
    folder = work_dir / "transcode"
    removed = 0
    if not folder.is_dir():
        return 0
    for leftover in folder.iterdir():
        stem = leftover.name.split(".", 1)[0]
        orphan = not stem.isdigit() or not still_needed(int(stem))
        if ".partial" in leftover.name or orphan:
            leftover.unlink(missing_ok=True)
            removed += 1
    return removed


def remove_output(work_dir: Path, upload_path: str | None) -> None:
    """Delete a transcoded copy once its recording is finished (never the original)."""
    if upload_path and Path(upload_path).parent == work_dir / "transcode":
        Path(upload_path).unlink(missing_ok=True)
