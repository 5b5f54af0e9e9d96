"""Coordination cost: the throughput run (N small recordings, an account limit of 10
concurrent 1 s jobs, the job-status webhook) on one node with SQLite (the baseline), on one
node with PostgreSQL, and on two nodes sharing one PostgreSQL database and one watched
folder (issue 12).

The account's limit is what bounds this run (ideal: N / 10 × 1 s), so more nodes cannot be
faster; what is measured is what claims, leases, fencing and the shared job limit cost on
the way. Measured from the moment the batch settled to the last ``recording_finished`` of
any node. Throughput ratio = the SQLite run's elapsed time / this run's (1.0 = as fast; the
target is at least 0.95). The sandbox's peak of concurrent jobs and its 429s show whether
the nodes together kept to the one limit.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from bench.common import (
    JOB_SECONDS,
    Context,
    Daemon,
    Row,
    cpu_delta,
    daemon_config,
    drop_all,
    log,
    make_wav,
    node_config,
    parse_ts,
    postgres_database,
    proc_cpu_times,
    request_counts,
    sandbox,
)
from bench.throughput import _slot_analysis

LIMIT = 10
TARGET_RATIO = 0.95


def measure(ctx: Context, count: int, *, nodes: int, postgres: bool) -> dict[str, Any]:
    """One run of `count` recordings on `nodes` daemons (PostgreSQL, or one on SQLite)."""
    label = f"{nodes} node{'s' if nodes > 1 else ''} on {'PostgreSQL' if postgres else 'SQLite'}"
    root = ctx.scratch(f"nodes-{nodes}-{'pg' if postgres else 'sqlite'}")
    staging = root / "staging"
    staging.mkdir()
    inbox = root / "inbox"
    inbox.mkdir()
    files = [make_wav(staging / f"rec-{i:04d}.wav", 1.0, seed=i) for i in range(count)]
    with contextlib.ExitStack() as stack:
        box = stack.enter_context(
            sandbox(job_seconds=JOB_SECONDS, schedule_seconds=0.0, concurrency_limit=LIMIT)
        )
        url = stack.enter_context(postgres_database()) if postgres else None
        tx: dict[str, int] = {}
        if url:  # read once the nodes stopped (a backend reports its figures as it ends)
            stack.callback(lambda: tx.update(after=_transactions(url)))
        daemons = []
        for i in range(nodes):
            node_root = root / f"node-{i}"
            node_root.mkdir()
            config = daemon_config(node_root, box.url, symbl={"max_concurrent_jobs": LIMIT})
            if url is None:
                config["watch"] = [{**config["watch"][0], "path": str(inbox)}]
            else:
                config = node_config(config, inbox, url, f"node-{i}", node_root / "work")
            daemons.append(stack.enter_context(Daemon(node_root, config)))
        settle = config["watch"][0]["settle_seconds"]
        for daemon in daemons:
            daemon.wait_ready()
        cpu_before = [proc_cpu_times(d.pid) for d in daemons]
        if url:
            tx["before"] = _transactions(url)
        log(f"nodes: {count} recordings on {label} (limit {LIMIT}, {JOB_SECONDS:g} s jobs)")
        dropped = drop_all(files, inbox)

        def finished() -> dict[Any, dict[str, Any]]:
            """recording id -> its recording_finished, whichever node logged it."""
            return {e.get("recording_id"): e for d in daemons for e in d.finished()}

        daemons[0].wait_for(
            lambda: len(finished()) >= count,
            120 + 5 * count * JOB_SECONDS / LIMIT,
            f"{count} recordings finished on {label}",
            interval=0.2,
        )
        done = finished()
        cpu = [
            cpu_delta(b, proc_cpu_times(d.pid)) for b, d in zip(cpu_before, daemons, strict=True)
        ]
        by_node = [len(d.finished()) for d in daemons]
        adopted = sum(len(d.where("work_adopted")) for d in daemons)
        events = [e for d in daemons for e in d.events()]
        stats = box.stats()
        jobs = box.jobs()
    transactions = tx["after"] - tx["before"] if url else None
    last = max(parse_ts(e["timestamp"]) for e in done.values())
    outcomes: dict[str, int] = {}
    for event in done.values():
        outcomes[event.get("outcome", "?")] = outcomes.get(event.get("outcome", "?"), 0) + 1
    ctx.cleanup(root)
    return {
        **_slot_analysis(jobs, events, dropped + settle, count),
        "label": label,
        "nodes": nodes,
        "postgres": postgres,
        "count": count,
        "elapsed_from_settled": last - (dropped + settle),
        "outcomes": outcomes,
        "finished_by_node": by_node,
        "work_adopted": adopted,
        "transactions_per_recording": transactions / count if transactions else None,
        "cpu_seconds": round(sum(c["total"] for c in cpu), 2),
        "cpu_by_node": cpu,
        "max_concurrent_jobs_seen": stats["max_concurrent_jobs_seen"],
        "requests": request_counts(stats),
    }


def _transactions(url: str) -> int:
    """Transactions committed and rolled back in `url`'s database so far (every store call
    is one, reads included)."""
    import psycopg

    name = url.rsplit("/", 1)[1]
    time.sleep(1.0)  # the server backends of stopped nodes report as they end
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s",
            (name,),
        ).fetchone()
    return int(row[0])


def run(ctx: Context) -> list[Row]:
    count = 100 if ctx.quick else 500
    runs = [
        measure(ctx, count, nodes=1, postgres=False),
        measure(ctx, count, nodes=1, postgres=True),
        measure(ctx, count, nodes=2, postgres=True),
    ]
    ctx.shared["nodes"] = runs
    base = runs[0]
    rows = [_ratio_row(r, base, count) for r in runs[1:]]
    peak = max(r["max_concurrent_jobs_seen"] for r in runs)
    refused = sum(r["requests"]["status_429"] for r in runs)
    rows.append(
        Row(
            benchmark="nodes",
            metric="peak concurrent jobs (sandbox), all three runs",
            ingestd=peak,
            ingestd_text=f"{peak}; {refused} × 429",
            target=f"≤ {LIMIT}, no 429",
            passed=peak <= LIMIT and refused == 0,
            notes="the two nodes share the account's limit: "
            + ", ".join(f"{r['label']}: peak {r['max_concurrent_jobs_seen']}" for r in runs),
        )
    )
    return rows


def _ratio_row(result: dict[str, Any], base: dict[str, Any], count: int) -> Row:
    ideal = count / LIMIT * JOB_SECONDS
    elapsed, base_elapsed = result["elapsed_from_settled"], base["elapsed_from_settled"]
    ratio = base_elapsed / elapsed
    done = result["outcomes"].get("done", 0)
    return Row(
        benchmark="nodes",
        metric=f"throughput, {count} recordings: {result['label']} vs 1 node on SQLite",
        ingestd=round(elapsed, 2),
        ingestd_text=f"{elapsed:.1f} s ({elapsed / ideal:.2f} × ideal)",
        baseline=round(base_elapsed, 2),
        baseline_text=f"{base_elapsed:.1f} s ({base_elapsed / ideal:.2f} × ideal)",
        ratio=round(ratio, 3),
        ratio_text=f"{ratio:.2f}× the throughput",
        target=f"≥ {TARGET_RATIO}×",
        passed=ratio >= TARGET_RATIO and done == count,
        notes=(
            f"{result['label']}: {done}/{count} done, "
            f"{result['transactions_per_recording']:.0f} database transactions per recording, "
            f"finished per node "
            f"{result['finished_by_node']}, work adopted {result['work_adopted']}; CPU "
            f"{1000 * result['cpu_seconds'] / count:.1f} ms per recording (all nodes) vs "
            f"{1000 * base['cpu_seconds'] / count:.1f} ms on SQLite; ideal {ideal:.0f} s; "
            f"first job {result['first_job_after_settled_s']:.2f} s after settled "
            f"(SQLite {base['first_job_after_settled_s']:.2f}); a slot per job "
            f"{result['slot_seconds_per_job']:.2f} s (SQLite {base['slot_seconds_per_job']:.2f}):"
            f" completion seen {result['completion_seen_late_mean_s']:.2f} s late "
            f"(SQLite {base['completion_seen_late_mean_s']:.2f}), next upload "
            f"{result['refill_mean_s']:.2f} s after that (SQLite {base['refill_mean_s']:.2f})"
        ),
        details={**result, "baseline": base, "ideal_s": ideal},
    )
