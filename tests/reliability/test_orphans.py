"""A daemon killed mid-transcode leaves no ffmpeg behind, and the restart finishes the job.

ffmpeg runs in a session of its own (a Ctrl-C to the daemon's terminal must not reach it),
so only its parent-death signal ties it to the daemon: without it a SIGKILLed daemon leaves
ffmpeg working for nobody, or hanging forever, unless systemd's cgroup kill cleans up.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from ingestd.testing import drop, wait_for

from .support import created, log_tail

LONG_SECONDS = 1200
"""Twenty minutes of sound: its mp3 encode takes seconds, long enough to kill the daemon
during it and to see whether ffmpeg carries on."""


def processes_using(folder: Path) -> dict[int, str]:
    """Live processes (not zombies) whose command line mentions `folder`: pid -> cmdline."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if str(folder) in cmdline and state != "Z":
            found[int(entry.name)] = cmdline
    return found


def test_sigkill_during_a_transcode_leaves_no_ffmpeg_and_the_restart_completes(
    ingestd_env, sandbox, make_media
) -> None:
    """SIGKILL the daemon while ffmpeg encodes: ffmpeg dies with it; after a restart the
    recording is transcoded again and submitted exactly once."""
    env = ingestd_env
    work = env.state_db.parent / "work"
    source = make_media("long.flac", seconds=LONG_SECONDS, sample_rate_hz=48000)
    env.write_config(watch={"transcode": {"audio_format": "mp3"}})
    drop(source, env.inbox)  # found by the start-up scan
    daemon = env.daemon().start()
    daemon.wait_ready()
    running = wait_for(lambda: processes_using(work), 60, "ffmpeg to start transcoding")
    assert any("ffmpeg" in cmdline for cmdline in running.values()), running

    daemon.kill()
    deadline = time.monotonic() + 5
    while processes_using(work) and time.monotonic() < deadline:
        time.sleep(0.05)
    survivors = processes_using(work)
    for pid in survivors:  # never leave them running for the rest of the suite
        os.kill(pid, signal.SIGKILL)
    if survivors:
        pytest.fail(f"ffmpeg outlived the SIGKILLed daemon: {survivors}")
    assert created(sandbox) == [], "killed before the upload"

    restarted = env.daemon().start()
    restarted.wait_ready()
    env.wait_states({"long.flac": "done"}, timeout=240)
    restarted.stop()
    submissions = created(sandbox)
    assert [s["params"]["name"] for s in submissions] == ["long"], log_tail(env)
    assert submissions[0]["content_type"] == "audio/mpeg"
    assert processes_using(work) == {}
