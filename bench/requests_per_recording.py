"""Requests: API calls per recording (token, upload, job polls, conversation fetches),
counted by the sandbox itself, for ingestd and for the baseline.

ingestd's figures come from the throughput runs when they ran in the same invocation (else
runs of their own): with the job-status webhook on, one confirming job read per recording;
with polling alone, the schedule that learned the jobs' duration. Two short runs of 10
simultaneous jobs without the webhook and without history (1 s and 10 s jobs) show the plain
schedule: the number of polls grows with the logarithm of the job time, not in proportion
to it (a fixed 0.2 s poll would need 50 for a 10 s job; the SDK's fixed 30 s poll needs 1
but answers 20 s late).
"""

from __future__ import annotations

from typing import Any

from bench import throughput
from bench.common import (
    Context,
    Daemon,
    Row,
    daemon_config,
    make_wav,
    request_counts,
    sandbox,
    small_file_baseline,
)

KINDS = ("token", "upload", "poll", "fetch")


def _per_recording(requests: dict[str, int], count: int) -> dict[str, float]:
    per = {k: requests.get(k, 0) / count for k in (*KINDS, "other", "status_429")}
    per["total"] = sum(per[k] for k in (*KINDS, "other"))
    return per


def _polling_only(ctx: Context, count: int, job_seconds: float) -> dict[str, Any]:
    """`count` recordings at once with `job_seconds` jobs and no webhook: polls per job."""
    root = ctx.scratch("requests-polling")
    staging = root / "staging"
    staging.mkdir()
    files = [make_wav(staging / f"long-{i:02d}.wav", 1.0, seed=70_000 + i) for i in range(count)]
    with sandbox(job_seconds=job_seconds, schedule_seconds=0.0, concurrency_limit=count) as box:
        config = daemon_config(root, box.url, symbl={"max_concurrent_jobs": count}, webhook=False)
        with Daemon(root, config) as daemon:
            daemon.wait_ready()
            for path in files:
                path.replace(root / "inbox" / path.name)
            daemon.wait_for(lambda: len(daemon.finished()) >= count, 120, "long jobs finished")
            jobs = daemon.where("job_finished")
        stats = box.stats()
    ctx.cleanup(root)
    polls = [j["polls"] for j in jobs]
    waits = [j["waited_s"] for j in jobs]
    return {
        "job_seconds": job_seconds,
        "polls_per_job": sum(polls) / len(polls),
        "mean_wait_s": sum(waits) / len(waits),
        "requests": request_counts(stats),
    }


def run(ctx: Context) -> list[Row]:
    measured = ctx.shared.get("throughput")
    if measured is None:
        measured = throughput.measure_ingestd(ctx, 20 if ctx.quick else 100, name="requests")
    learned = ctx.shared.get("throughput_polling")
    if learned is None:
        learned = throughput.measure_ingestd(
            ctx, 20 if ctx.quick else 100, name="requests", webhook=False
        )
    count = measured["count"]
    ours = _per_recording(measured["requests"], count)
    ours_polling = _per_recording(learned["requests"], learned["count"])
    polling = [_polling_only(ctx, 10, seconds) for seconds in (1.0, 10.0)]
    baseline = small_file_baseline(ctx)
    files = len(baseline["files"])
    theirs = _per_recording(request_counts(baseline["sandbox_stats"]), files)

    one_at_a_time = ""
    if "latency" in ctx.shared:
        single = _per_recording(ctx.shared["latency"]["requests"], ctx.shared["latency"]["count"])
        one_at_a_time = f"; one at a time (latency run): {single['total']:.2f}/recording, "
        one_at_a_time += f"{single['poll']:.2f} polls"

    webhook_notes = (
        f"429s: {ours['status_429']:.2f}/recording; with the webhook "
        f"{measured['mean_polls_per_job']:.1f} polls/job (one confirming read); "
        "polling alone adapts: "
        + ", ".join(
            f"{p['polls_per_job']:.1f} polls for {p['job_seconds']:g} s jobs "
            f"(seen {p['mean_wait_s'] - p['job_seconds']:.2f} s late)"
            for p in polling
        )
        + one_at_a_time
    )
    polling_notes = (
        f"polling only, schedule learned from the jobs seen: "
        f"{learned['mean_polls_per_job']:.1f} polls/job, completion seen "
        f"{learned['completion_seen_late_mean_s']:.2f} s late on average"
    )
    return [
        _row(f"{count} recordings, 1 s jobs, webhook", ours, theirs, webhook_notes, polling),
        _row(f"{learned['count']} recordings, 1 s jobs, polling", ours_polling, theirs,
             polling_notes),
    ]  # fmt: skip


def _show(per: dict[str, float]) -> str:
    return (
        f"{per['total']:.2f} (token {per['token']:.2f}, upload {per['upload']:.2f}, "
        f"polls {per['poll']:.2f}, fetches {per['fetch']:.2f})"
    )


def _row(
    what: str,
    ours: dict[str, float],
    theirs: dict[str, float],
    notes: str,
    polling: list[dict[str, Any]] | None = None,
) -> Row:
    """One row: ingestd's calls per recording beside the baseline's."""
    details: dict[str, Any] = {"ingestd": ours, "baseline": theirs}
    if polling is not None:
        details["polling_only"] = polling
    return Row(
        benchmark="requests",
        metric=f"API calls per recording ({what})",
        ingestd=round(ours["total"], 2),
        ingestd_text=_show(ours),
        baseline=round(theirs["total"], 2),
        baseline_text=_show(theirs),
        ratio=round(theirs["total"] / ours["total"], 2),
        ratio_text=f"{theirs['total'] / ours['total']:.2f}× (baseline ÷ ingestd)",
        target="reported; polling adaptive",
        passed=ours["status_429"] == 0,
        notes=notes,
        details=details,
    )
