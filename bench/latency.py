"""Latency: from a file settling to its results being written, with 1 s sandbox jobs.

Files are dropped one at a time (each after the previous one finished), so nothing queues.
A file dropped at time T (moved in atomically) is *settled* at T + settle_seconds: that is
the earliest moment any watcher may touch it. The end is the daemon's
``recording_finished`` (outcome done), logged after every sink wrote its files.

The baseline's clock starts when it is handed the (already complete) file and stops when
its results file is written: read, upload, the 30 s poll, the fetches.

Measured twice: with the job-status webhook (Symbl POSTs each job's status to the daemon,
here over loopback, so a finished job is seen at once) and with polling alone (the
default against the real API, where the webhook needs a public URL): there the schedule
learns how long jobs take and polls around that (`ingestd_symbl.polling`).
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

from bench.common import (
    JOB_SECONDS,
    Context,
    Daemon,
    Row,
    daemon_config,
    log,
    make_wav,
    parse_ts,
    percentile,
    request_counts,
    sandbox,
    small_file_baseline,
)

TARGET_SECONDS = 2.0
PHASES = ("discovered", "probed", "transcoded", "queued", "submitting", "submitted", "fetching")


def measure_ingestd(ctx: Context, count: int, *, webhook: bool = True) -> dict[str, Any]:
    root = ctx.scratch("latency" if webhook else "latency-polling")
    staging = root / "staging"
    staging.mkdir()
    files = [make_wav(staging / f"lat-{i:03d}.wav", 2.0, seed=50_000 + i) for i in range(count)]
    samples: list[dict[str, Any]] = []
    with sandbox(job_seconds=JOB_SECONDS, schedule_seconds=0.0, concurrency_limit=5) as box:
        config = daemon_config(root, box.url, webhook=webhook)
        settle = config["watch"][0]["settle_seconds"]
        inbox = root / "inbox"
        with Daemon(root, config) as daemon:
            daemon.wait_ready()
            how = "webhook" if webhook else "polling only"
            log(f"latency: {count} recordings, one at a time ({JOB_SECONDS:g} s jobs, {how})")
            for path in files:
                dropped = time.time()
                os.replace(path, inbox / path.name)
                name = path.name
                event = daemon.wait_for(
                    lambda n=name: daemon.where("recording_finished", path=n),
                    120,
                    f"{name} finished",
                )[0]
                samples.append({"file": name, "dropped": dropped, "finished": event})
            events = list(daemon.events())
        stats = box.stats()
    for sample in samples:
        settled = sample["dropped"] + settle
        sample["latency"] = parse_ts(sample["finished"]["timestamp"]) - settled
        sample["outcome"] = sample["finished"].get("outcome")
        rid = sample["finished"].get("recording_id")
        marks: dict[str, float] = {}
        for e in events:
            if e.get("recording_id") != rid:
                continue
            if e.get("event") == "recording_discovered":
                marks["discovered"] = parse_ts(e["timestamp"])
            elif e.get("event") == "state_changed":
                marks[e["new"]] = parse_ts(e["timestamp"])
            elif e.get("event") == "job_finished":
                sample["polls"] = e.get("polls")
        sample["marks"] = {k: round(v - settled, 3) for k, v in marks.items()}
        del sample["finished"]
    ctx.cleanup(root)
    return {"samples": samples, "sandbox_stats": stats}


def _phase_summary(samples: list[dict[str, Any]]) -> dict[str, float]:
    """Median time (s after settling) at which each state was reached."""
    out = {}
    for phase in (*PHASES, "delivering", "done"):
        values = [s["marks"][phase] for s in samples if phase in s["marks"]]
        if values:
            out[phase] = round(statistics.median(values), 3)
    return out


def run(ctx: Context) -> list[Row]:
    count = 5 if ctx.quick else 20
    baseline = small_file_baseline(ctx)
    rows = []
    for webhook in (True, False):
        result = measure_ingestd(ctx, count, webhook=webhook)
        if webhook:
            ctx.shared["latency"] = {
                "count": count,
                "requests": request_counts(result["sandbox_stats"]),
                "polls": [s.get("polls") for s in result["samples"]],
            }
        rows.append(_row(result, count, baseline, webhook))
    return rows


def _row(result: dict[str, Any], count: int, baseline: dict[str, Any], webhook: bool) -> Row:
    latencies = [s["latency"] for s in result["samples"] if s["outcome"] == "done"]
    median = statistics.median(latencies)
    base = baseline["per_file_seconds"]
    base_median = statistics.median(base)
    phases = _phase_summary(result["samples"])
    polls = [s.get("polls") for s in result["samples"] if s.get("polls")]
    how = "webhook" if webhook else "polling only"
    return Row(
        benchmark="latency",
        metric=f"settled → results, median of {len(latencies)} ({JOB_SECONDS:g} s jobs, {how})",
        ingestd=round(median, 3),
        ingestd_text=(
            f"{median:.2f} s (p90 {percentile(latencies, 0.9):.2f}, max {max(latencies):.2f})"
        ),
        baseline=round(base_median, 2),
        baseline_text=f"{base_median:.1f} s (median of {len(base)})",
        ratio=round(base_median / median, 1),
        ratio_text=f"{base_median / median:.0f}× faster",
        target=f"< {TARGET_SECONDS:g} s median",
        passed=median < TARGET_SECONDS and len(latencies) == count,
        notes=(
            f"{how}: median state reached at (s after settled): "
            + ", ".join(f"{k} {v:.2f}" for k, v in phases.items())
            + (f"; {statistics.mean(polls):.1f} polls/job" if polls else "")
        ),
        details={
            "webhook": webhook,
            "latencies": latencies,
            "phases": phases,
            "samples": result["samples"],
            "baseline_per_file_s": base,
            "baseline_files": baseline["files"],
        },
    )
