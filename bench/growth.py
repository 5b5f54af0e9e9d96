"""Memory growth: the daemon's RSS does not grow with the work it has done.

A long-running daemon that keeps something per recording (a cache, a log buffer, a task
that never ends) grows without bound; this finds it in minutes rather than in a month.
Recordings are dropped in batches of 500 (100 with ``--quick``); after each batch has
finished, the daemon's current RSS (VmRSS from /proc) is read. The figure is the RSS after
5,000 recordings (1,000 with ``--quick``) minus the RSS after the first batch: the first
batch warms every code path (imports, pools, caches), so what comes later is growth.

Sandbox jobs take 0.1 s at a limit of 20 so that 5,000 recordings take minutes; what is
measured is memory, not speed. There is no baseline: the SDK way is one process per run.
"""

from __future__ import annotations

import time
from typing import Any

from bench.common import (
    Context,
    Daemon,
    Row,
    daemon_config,
    drop_all,
    log,
    make_wav,
    mb,
    proc_status_kb,
    sandbox,
)

TARGET_MB = 10.0
LIMIT = 20
JOB_SECONDS = 0.1


def run(ctx: Context) -> list[Row]:
    batch, batches = (100, 10) if ctx.quick else (500, 10)
    result = measure(ctx, batch, batches)
    first, last = result["rss_kb"][0], result["rss_kb"][-1]
    growth_mb = (last - first) / 1024
    done = result["outcomes"].get("done", 0)
    total = batch * batches
    return [
        Row(
            benchmark="growth",
            metric=f"RSS after {total:,} recordings minus RSS after {batch}",
            ingestd=round(growth_mb, 1),
            ingestd_text=f"{growth_mb:+.1f} MB ({mb(first)} → {mb(last)} MB)",
            target=f"≤ {TARGET_MB:g} MB",
            passed=growth_mb <= TARGET_MB and done == total,
            notes=(
                f"RSS (MB) after each batch of {batch}: "
                f"{', '.join(str(mb(kb)) for kb in result['rss_kb'])}; peak (VmHWM) "
                f"{mb(result['peak_kb'])} MB; {done}/{total} done in "
                f"{result['seconds']:.0f} s ({JOB_SECONDS:g} s jobs, limit {LIMIT})"
            ),
            details=result,
        )
    ]


def measure(ctx: Context, batch: int, batches: int) -> dict[str, Any]:
    root = ctx.scratch("growth")
    staging = root / "staging"
    staging.mkdir()
    rss_kb: list[int] = []
    started = time.monotonic()
    with sandbox(job_seconds=JOB_SECONDS, schedule_seconds=0.0, concurrency_limit=LIMIT) as box:
        config = daemon_config(root, box.url, symbl={"max_concurrent_jobs": LIMIT})
        with Daemon(root, config) as daemon:
            daemon.wait_ready()
            for n in range(batches):
                files = [
                    make_wav(staging / f"rec-{n:02d}-{i:04d}.wav", 0.2, seed=n * batch + i)
                    for i in range(batch)
                ]
                drop_all(files, root / "inbox")
                want = (n + 1) * batch
                daemon.wait_for(
                    lambda want=want: len(daemon.finished()) >= want,
                    300 + batch,
                    f"{want} recordings finished",
                    interval=0.2,
                )
                rss_kb.append(proc_status_kb(daemon.pid, "VmRSS") or 0)
                log(f"growth: {want} recordings, RSS {mb(rss_kb[-1])} MB")
            peak_kb = proc_status_kb(daemon.pid, "VmHWM")
            outcomes: dict[str, int] = {}
            for event in daemon.finished():
                key = event.get("outcome", "?")
                outcomes[key] = outcomes.get(key, 0) + 1
    ctx.cleanup(root)
    return {
        "batch": batch,
        "batches": batches,
        "rss_kb": rss_kb,
        "peak_kb": peak_kb,
        "outcomes": outcomes,
        "seconds": time.monotonic() - started,
    }
