"""Memory: the daemon's peak RSS while it takes a 2 GiB recording all the way through.

The file is a valid 16-bit mono 48 kHz wav (6.2 h; ffprobe and the sandbox's format check
accept it), so the ffmpeg plugin uploads it as it is: no transcode, the daemon itself
hashes it, probes it (ffprobe, a child process not counted here) and streams it to the
sandbox, which runs in the bench process. The daemon's peak is the kernel's high-water mark
``VmHWM`` from /proc/<pid>/status, read after the recording finished; a 20 Hz VmRSS sampler
cross-checks it.

The baseline reads the file into memory and posts it (then polls every 30 s): its own
VmHWM, read before it exits.
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
    ffprobe_ok,
    free_bytes,
    log,
    make_big_wav,
    mb,
    proc_status_kb,
    run_baseline,
    sandbox,
)

TARGET_MB = 80
GIB = 1 << 30


def run(ctx: Context) -> list[Row]:
    size = GIB // 4 if ctx.quick else 2 * GIB
    root = ctx.scratch("memory")
    need = size + GIB
    if free_bytes(root) < need:
        return [
            Row(
                benchmark="memory",
                metric=f"peak RSS, {size / GIB:g} GiB upload",
                ingestd=None,
                ingestd_text="skipped",
                notes=f"needs {need / GIB:.1f} GiB free in {root}",
            )
        ]
    staging = root / "staging"
    staging.mkdir()
    started = time.monotonic()
    big = make_big_wav(staging / "big.wav", size)
    log(f"memory: wrote a {size / GIB:g} GiB wav in {time.monotonic() - started:.1f} s")
    if not ffprobe_ok(big):
        raise RuntimeError(f"ffprobe does not accept {big}")
    try:
        ingestd = _measure_ingestd(root, big)
        log("memory: baseline (reads the whole file, then a 30 s poll)")
        with sandbox(job_seconds=1.0, schedule_seconds=0.0, concurrency_limit=5) as box:
            baseline = run_baseline([big], box.url, root / "baseline")
    finally:
        ctx.cleanup(root)
    peak = ingestd["peak_kb"]
    base_peak = baseline["peak_rss_kb"]
    return [
        Row(
            benchmark="memory",
            metric=f"daemon peak RSS (VmHWM), {size / GIB:g} GiB wav uploaded",
            ingestd=mb(peak),
            ingestd_text=f"{mb(peak)} MB",
            baseline=mb(base_peak),
            baseline_text=f"{mb(base_peak):,} MB",
            ratio=round(base_peak / peak, 1),
            ratio_text=f"{base_peak / peak:.0f}× less",
            target=f"< {TARGET_MB} MB",
            passed=ingestd["outcome"] == "done" and mb(peak) < TARGET_MB,
            notes=(
                f"idle after start-up {mb(ingestd['ready_kb'])} MB; upload "
                f"{ingestd['upload_s']:.1f} s ({ingestd['upload_mb_s']:.0f} MB/s); "
                f"sampled peak {mb(ingestd['sampled_peak_kb'])} MB; outcome {ingestd['outcome']}"
            ),
            details={"ingestd": ingestd, "baseline": baseline, "size_bytes": size},
        )
    ]


def _measure_ingestd(root: Any, big: Any) -> dict[str, Any]:
    with sandbox(job_seconds=1.0, schedule_seconds=0.0, concurrency_limit=5) as box:
        config = daemon_config(root, box.url)
        with Daemon(root, config) as daemon:
            daemon.wait_ready()
            time.sleep(1.0)
            ready_kb = proc_status_kb(daemon.pid, "VmHWM")
            with RssSampler(daemon.pid) as sampler:
                (root / "inbox" / big.name).hardlink_to(big)  # appears complete, at once
                log("memory: ingestd is taking the file")
                daemon.wait_for(lambda: daemon.finished(), 900, "the big recording finished", 0.2)
            peak_kb = proc_status_kb(daemon.pid, "VmHWM")
            finished = daemon.finished()[0]
            uploads = daemon.where("upload_finished")
        stats = box.stats()
    upload_s = uploads[0]["seconds"] if uploads else float("nan")
    return {
        "ready_kb": ready_kb,
        "peak_kb": peak_kb,
        "sampled_peak_kb": sampler.peak_kb,
        "outcome": finished.get("outcome"),
        "error": finished.get("error"),
        "seconds": finished.get("seconds"),
        "upload_s": upload_s,
        "upload_mb_s": big.stat().st_size / 1e6 / upload_s if uploads else float("nan"),
        "bytes_received": stats.get("bytes_received"),
    }
