"""Idle: CPU of a daemon watching 1,110 nested folders (10 × 10 × 10) with nothing to do.

CPU is the daemon's own utime + stime from /proc/<pid>/stat, over 60 s (10 s in quick
mode), starting 2 s after ``daemon_ready``; as a percentage of one core. Context switches
(voluntary + involuntary, all threads) show how often it wakes.

There is nothing to compare in the SDK (it watches nothing); the reference beside it is the
same daemon with ``polling: true`` (watchdog's polling observer at the default 2 s), which
is what a watcher costs where native events do not work (NFS/SMB).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench.common import (
    Context,
    Daemon,
    Row,
    daemon_config,
    log,
    proc_cpu_seconds,
    sandbox,
)

TARGET_PERCENT = 1.0


def _tree(inbox: Path) -> int:
    """10 sites × 10 teams × 10 rooms: the number of folders below the inbox."""
    for a in range(10):
        for b in range(10):
            for c in range(10):
                (inbox / f"site-{a}" / f"team-{b}" / f"room-{c}").mkdir(parents=True)
    return 10 + 100 + 1000


def _switches(pid: int) -> int:
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            for line in (task / "status").read_text().splitlines():
                if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def _measure(ctx: Context, seconds: float, polling: bool) -> dict[str, Any]:
    root = ctx.scratch("idle-polling" if polling else "idle")
    folders = _tree(root / "inbox")
    with sandbox(job_seconds=1.0, schedule_seconds=0.0, concurrency_limit=5) as box:
        config = daemon_config(root, box.url, watch={"polling": polling})
        with Daemon(root, config) as daemon:
            daemon.wait_ready()
            mode = daemon.where("watch_started")[0].get("mode")
            time.sleep(2.0)
            cpu0, sw0, t0 = proc_cpu_seconds(daemon.pid), _switches(daemon.pid), time.monotonic()
            time.sleep(seconds)
            cpu1, sw1, t1 = proc_cpu_seconds(daemon.pid), _switches(daemon.pid), time.monotonic()
    ctx.cleanup(root)
    wall = t1 - t0
    return {
        "folders": folders,
        "mode": mode,
        "seconds": wall,
        "cpu_seconds": cpu1 - cpu0,
        "cpu_percent": 100 * (cpu1 - cpu0) / wall,
        "wakeups_per_s": (sw1 - sw0) / wall,
    }


def run(ctx: Context) -> list[Row]:
    seconds = 10.0 if ctx.quick else 60.0
    log(f"idle: native watch of 1,110 folders for {seconds:g} s, then the same polling")
    native = _measure(ctx, seconds, polling=False)
    polling = _measure(ctx, seconds, polling=True)
    ratio = polling["cpu_percent"] / native["cpu_percent"] if native["cpu_percent"] else None
    return [
        Row(
            benchmark="idle",
            metric=f"idle CPU, {native['folders']:,} folders watched ({native['mode']}), "
            f"{seconds:g} s",
            ingestd=round(native["cpu_percent"], 3),
            ingestd_text=(
                f"{native['cpu_percent']:.2f} % of a core "
                f"({native['wakeups_per_s']:.1f} wake-ups/s)"
            ),
            baseline=round(polling["cpu_percent"], 3),
            baseline_text=(
                f"SDK: none (no watching); polling watcher {polling['cpu_percent']:.1f} %"
            ),
            ratio=round(ratio, 1) if ratio else None,
            ratio_text=f"{ratio:.0f}× less than polling" if ratio else "",
            target=f"< {TARGET_PERCENT:g} %",
            passed=native["cpu_percent"] < TARGET_PERCENT and native["mode"] == "native",
            details={"native": native, "polling": polling},
        )
    ]
