"""The OpenAI-compatible backend: the daemon's peak RSS while it uploads a 60-minute recording
to the emulator (`ingestd_openai.emulator`, in the bench process, on loopback).

The file is a 16-bit mono 16 kHz wav (115 MB; 10 minutes with ``--quick``), sent as it is
(``backend: openai`` without a size limit, as for a self-hosted server): multipart, streamed
from disk 1 MiB at a time, so the daemon's memory must not grow with the file. The peak is
the kernel's high-water mark ``VmHWM`` of the daemon, read after the recording finished; a
20 Hz VmRSS sampler cross-checks it. The emulator answers from the upload's real duration.
"""

from __future__ import annotations

import time
from typing import Any

from bench.common import (
    Context,
    Daemon,
    Row,
    RssSampler,
    daemon_config,
    log,
    make_wav,
    mb,
    proc_status_kb,
)

TARGET_MB = 80


def run(ctx: Context) -> list[Row]:
    from ingestd_openai.emulator import EmulatorOptions, OpenAIEmulator

    minutes = 10 if ctx.quick else 60
    root = ctx.scratch("openai")
    staging = root / "staging"
    staging.mkdir()
    recording = make_wav(staging / "meeting.wav", minutes * 60, seed=60)
    size = recording.stat().st_size
    log(f"openai: a {minutes}-minute wav of {size / 1e6:.0f} MB")
    emulator = OpenAIEmulator(EmulatorOptions(api_key="bench-key"))
    emulator.start()
    try:
        config = daemon_config(root, "sandbox")
        config["backend"] = "openai"
        config["openai"] = {
            "base_url": emulator.url,
            "model": "whisper-1",
            "api_key": "bench-key",
        }
        measured = _measure(root, config, recording)
        answered = emulator.answered()
    finally:
        emulator.stop()
        ctx.cleanup(root)
    peak = measured["peak_kb"]
    ok = measured["outcome"] == "done" and len(answered) == 1 and mb(peak) < TARGET_MB
    return [
        Row(
            benchmark="openai",
            metric=f"daemon peak RSS (VmHWM), {minutes}-min wav ({size / 1e6:.0f} MB) "
            "uploaded to the OpenAI-compatible emulator",
            ingestd=mb(peak),
            ingestd_text=f"{mb(peak)} MB",
            target=f"< {TARGET_MB} MB",
            passed=ok,
            notes=(
                f"idle after start-up {mb(measured['ready_kb'])} MB; sampled peak "
                f"{mb(measured['sampled_peak_kb'])} MB; recording done in "
                f"{measured['seconds']} s; the emulator received "
                f"{answered[0].size_bytes if answered else 0} bytes of audio in "
                f"{len(answered)} request(s), {answered[0].duration_seconds if answered else 0} s "
                f"long; outcome {measured['outcome']}"
            ),
            details={"ingestd": measured, "size_bytes": size, "minutes": minutes},
        )
    ]


def _measure(root: Any, config: dict[str, Any], recording: Any) -> dict[str, Any]:
    with Daemon(root, config) as daemon:
        daemon.wait_ready()
        time.sleep(1.0)
        ready_kb = proc_status_kb(daemon.pid, "VmHWM")
        with RssSampler(daemon.pid) as sampler:
            (root / "inbox" / recording.name).hardlink_to(recording)  # complete at once
            log("openai: ingestd is taking the file")
            daemon.wait_for(lambda: daemon.finished(), 900, "the recording finished", 0.2)
        peak_kb = proc_status_kb(daemon.pid, "VmHWM")
        finished = daemon.finished()[0]
    return {
        "ready_kb": ready_kb,
        "peak_kb": peak_kb,
        "sampled_peak_kb": sampler.peak_kb,
        "outcome": finished.get("outcome"),
        "error": finished.get("error"),
        "seconds": finished.get("seconds"),
    }
