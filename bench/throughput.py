"""Throughput: N small recordings against an account limit of 10 concurrent 1 s jobs.

The ideal is N / 10 × 1 s (the account can do no better). Measured from the moment the
whole batch is settled (dropped at once, plus the settle window) to the last recording's
results written (``recording_finished``, outcome done). The sandbox's own count of
concurrent jobs (``max_concurrent_jobs_seen``) and of 429 answers shows whether the
daemon ever exceeded the limit.

The daemon's CPU per recording is user + sys of the daemon and of the children it waited
for (ffprobe), from /proc, over the run, divided by N; the baseline's is the SDK way's CPU
per file, measured in the same run on the files it processed.

Run twice: with the job-status webhook (a finished job is seen at once) and with polling
alone (the default against the real API), whose schedule learns the jobs' duration.

The baseline does one file at a time, each costing its upload, at least one 30 s poll and
the fetches; its time for N files is extrapolated from the files it was measured on.
"""

from __future__ import annotations

import bisect
import contextlib
import os
from typing import Any

from bench.common import (
    JOB_SECONDS,
    Context,
    Daemon,
    Row,
    SpeedProbe,
    cpu_delta,
    daemon_config,
    drop_all,
    log,
    make_wav,
    parse_ts,
    proc_cpu_times,
    request_counts,
    sandbox,
    small_file_baseline,
)

LIMIT = 10
TARGET_FACTOR = 1.1
TARGET_CPU_MS = 20.0


def measure_ingestd(
    ctx: Context,
    count: int,
    name: str = "throughput",
    *,
    webhook: bool = True,
    dashboard_clients: int = 0,
) -> dict[str, Any]:
    """One run; with `dashboard_clients`, that many clients poll the dashboard's
    ``/api/status`` every second meanwhile (`bench.dashboard_load`)."""
    root = ctx.scratch(name if webhook else f"{name}-polling")
    staging = root / "staging"
    staging.mkdir()
    files = [make_wav(staging / f"rec-{i:04d}.wav", 1.0, seed=i) for i in range(count)]
    with sandbox(job_seconds=JOB_SECONDS, schedule_seconds=0.0, concurrency_limit=LIMIT) as box:
        config = daemon_config(root, box.url, symbl={"max_concurrent_jobs": LIMIT}, webhook=webhook)
        if dashboard_clients:
            config["dashboard"] = {"listen": "127.0.0.1:0"}
        settle = config["watch"][0]["settle_seconds"]
        with Daemon(root, config) as daemon, contextlib.ExitStack() as stack:
            daemon.wait_ready()
            pollers = None
            if dashboard_clients:
                from bench.dashboard_load import Pollers

                url = daemon.where("dashboard_listening")[0]["url"]
                pollers = stack.enter_context(Pollers(f"{url}/api/status", dashboard_clients))
            cpu_before = proc_cpu_times(daemon.pid)
            how = "webhook" if webhook else "polling only"
            log(
                f"{name}: dropping {count} recordings "
                f"(limit {LIMIT}, {JOB_SECONDS:g} s jobs, {how})"
            )
            with SpeedProbe() as speed:
                dropped = drop_all(files, root / "inbox")
                timeout = 120 + 5 * count * JOB_SECONDS / LIMIT
                daemon.wait_for(
                    lambda: len(daemon.finished()) >= count,
                    timeout,
                    f"{count} recordings finished",
                    interval=0.2,  # the figures come from the log's timestamps, not from here
                )
                finished = daemon.finished()
                events = list(daemon.events())
                cpu = cpu_delta(cpu_before, proc_cpu_times(daemon.pid))
            polled = pollers.stop() if pollers else None
        stats = box.stats()
        jobs = box.jobs()
    outcomes: dict[str, int] = {}
    for event in finished:
        outcomes[event.get("outcome", "?")] = outcomes.get(event.get("outcome", "?"), 0) + 1
    last = max(parse_ts(e["timestamp"]) for e in finished)
    polls = [e["polls"] for e in events if e.get("event") == "job_finished"]
    waits = [e["waited_s"] for e in events if e.get("event") == "job_finished"]
    ctx.cleanup(root)
    slots = _slot_analysis(jobs, events, dropped + settle, count)
    return {
        **slots,
        "webhook": webhook,
        "count": count,
        "elapsed_from_settled": last - (dropped + settle),
        "elapsed_from_drop": last - dropped,
        "outcomes": outcomes,
        "daemon_cpu_seconds": cpu["total"],
        "daemon_cpu": cpu,
        "machine_speed": speed.figures,
        "load_average_after": list(os.getloadavg()),
        "max_concurrent_jobs_seen": stats["max_concurrent_jobs_seen"],
        "requests": request_counts(stats),
        "raw_requests": stats.get("requests", {}),
        "mean_polls_per_job": sum(polls) / len(polls) if polls else None,
        "mean_job_wait_s": sum(waits) / len(waits) if waits else None,
        "dashboard_polling": polled,
    }


def _slot_analysis(
    jobs: list[dict[str, Any]], events: list[dict[str, Any]], settled: float, count: int
) -> dict[str, float]:
    """Where the time between the ideal and the measured went, from the sandbox's job
    history and the daemon's log: when the first job started, how long each of the 10 slots
    took per job (ideal: the job time), how late the daemon saw each completion (polling),
    and how long a seen completion took to become the next job (dispatch + upload)."""
    created = sorted(j["history"][0]["at"] for j in jobs)
    completed = {j["id"]: h["at"] for j in jobs for h in j["history"] if h["status"] == "completed"}
    seen = {
        e["job_id"]: parse_ts(e["timestamp"]) for e in events if e.get("event") == "job_finished"
    }
    lags = [seen[j] - completed[j] for j in seen if j in completed]
    seen_sorted = sorted(seen.values())
    refills = []
    for at in created[LIMIT:]:
        i = bisect.bisect_left(seen_sorted, at) - 1
        if i >= 0:
            refills.append(at - seen_sorted[i])
    rounds = count / LIMIT
    return {
        "first_job_after_settled_s": created[0] - settled if created else float("nan"),
        "slot_seconds_per_job": (max(completed.values()) - created[0]) / rounds
        if completed
        else float("nan"),
        "completion_seen_late_mean_s": sum(lags) / len(lags) if lags else float("nan"),
        "completion_seen_late_max_s": max(lags) if lags else float("nan"),
        "refill_mean_s": sum(refills) / len(refills) if refills else float("nan"),
    }


def run(ctx: Context) -> list[Row]:
    count = 100 if ctx.quick else 500
    baseline = small_file_baseline(ctx)
    per_file = sum(baseline["per_file_seconds"]) / len(baseline["per_file_seconds"])
    results = [measure_ingestd(ctx, count, webhook=webhook) for webhook in (True, False)]
    ctx.shared["throughput"], ctx.shared["throughput_polling"] = results
    rows = [_row(result, count, baseline, per_file) for result in results]
    rows += [_cpu_row(result, count, baseline) for result in results]
    peak = max(r["max_concurrent_jobs_seen"] for r in results)
    refused = sum(r["requests"]["status_429"] for r in results)
    rows.append(
        Row(
            benchmark="throughput",
            metric="peak concurrent jobs (sandbox), both runs",
            ingestd=peak,
            ingestd_text=f"{peak}; {refused} × 429",
            baseline=1,
            baseline_text="1 (one file at a time)",
            target=f"≤ {LIMIT}, no 429",
            passed=peak <= LIMIT and refused == 0,
        )
    )
    return rows


def _row(result: dict[str, Any], count: int, baseline: dict[str, Any], per_file: float) -> Row:
    ideal = count / LIMIT * JOB_SECONDS
    elapsed = result["elapsed_from_settled"]
    baseline_total = per_file * count
    done = result["outcomes"].get("done", 0)
    within_limit = result["max_concurrent_jobs_seen"] <= LIMIT
    passed = elapsed <= TARGET_FACTOR * ideal and within_limit and done == count
    how = "webhook" if result["webhook"] else "polling only"
    return Row(
        benchmark="throughput",
        metric=f"{count} recordings, limit {LIMIT}, {JOB_SECONDS:g} s jobs, {how}",
        ingestd=round(elapsed, 2),
        ingestd_text=f"{elapsed:.1f} s ({elapsed / ideal:.2f} × ideal)",
        baseline=round(baseline_total, 1),
        baseline_text=(
            f"{baseline_total:,.0f} s ({baseline_total / ideal:.0f} × ideal; "
            f"extrapolated from {len(baseline['per_file_seconds'])} file(s))"
        ),
        ratio=round(baseline_total / elapsed, 1),
        ratio_text=f"{baseline_total / elapsed:.0f}× faster",
        target=f"≤ {TARGET_FACTOR} × ideal ({TARGET_FACTOR * ideal:.0f} s)",
        passed=passed,
        notes=(
            f"{how}: ideal {ideal:.0f} s; peak concurrent jobs "
            f"{result['max_concurrent_jobs_seen']} (limit {LIMIT}), 429s "
            f"{result['requests']['status_429']}; {done}/{count} done; "
            f"{result['mean_polls_per_job']:.1f} polls/job; "
            f"first job {result['first_job_after_settled_s']:.2f} s after settled; "
            f"{result['slot_seconds_per_job']:.2f} s of a slot per {JOB_SECONDS:g} s job: "
            f"completion seen {result['completion_seen_late_mean_s']:.2f} s late "
            f"(max {result['completion_seen_late_max_s']:.2f}), next upload "
            f"{result['refill_mean_s']:.2f} s after that; daemon CPU "
            f"{result['daemon_cpu_seconds']:.0f} s"
        ),
        details={**result, "ideal_s": ideal, "baseline_per_file_s": per_file},
    )


def _cpu_row(result: dict[str, Any], count: int, baseline: dict[str, Any]) -> Row:
    cpu = result["daemon_cpu"]
    per_recording_ms = 1000 * cpu["total"] / count
    files = baseline["files"]
    baseline_ms = 1000 * sum(f["cpu_seconds"] for f in files) / len(files)
    how = "webhook" if result["webhook"] else "polling only"
    return Row(
        benchmark="throughput",
        metric=f"daemon CPU per recording (user+sys, with children), {how}",
        ingestd=round(per_recording_ms, 1),
        ingestd_text=f"{per_recording_ms:.1f} ms",
        baseline=round(baseline_ms, 1),
        baseline_text=f"{baseline_ms:.1f} ms (SDK way, per file, {len(files)} file(s))",
        ratio=round(per_recording_ms / baseline_ms, 2) if baseline_ms else None,
        ratio_text=f"{per_recording_ms / baseline_ms:.1f}×" if baseline_ms else "",
        target=f"≤ {TARGET_CPU_MS:g} ms",
        passed=per_recording_ms <= TARGET_CPU_MS,
        notes=(
            f"{how}, CPU per recording: daemon user {1000 * cpu['user'] / count:.1f} ms, "
            f"sys {1000 * cpu['system'] / count:.1f} ms; children (ffprobe) user "
            f"{1000 * cpu['children_user'] / count:.1f} ms, sys "
            f"{1000 * cpu['children_system'] / count:.1f} ms; load average after "
            f"{', '.join(f'{x:.1f}' for x in result['load_average_after'])}; "
            f"{_speed_text(result['machine_speed'])}"
        ),
        details={"cpu_seconds": cpu, "count": count, "baseline_cpu_ms_per_file": baseline_ms},
    )


def _speed_text(speed: dict[str, Any]) -> str:
    if not speed.get("loop_ms"):
        return "machine speed not measured"
    return (
        f"machine speed meanwhile (`SpeedProbe`'s loop, lower is faster): median "
        f"{speed['loop_ms_median']:.1f} ms, {speed['loop_ms_min']:.1f}–"
        f"{speed['loop_ms_max']:.1f} ms over {len(speed['loop_ms'])} samples"
    )
