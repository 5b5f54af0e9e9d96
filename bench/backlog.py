"""Backlog: start-up with 100,000 files that were all processed before.

Set-up (not timed): 100,000 tiny ``.wav`` files in 100 folders, and a state database
(created by `ingestd.store.SqliteStore`, so the schema is the daemon's own) in which each of them
is a ``done`` recording with its exact size and mtime. The rows are written directly with
one ``executemany`` in one transaction; a first pass through the daemon would produce the
same rows (plus events and deliveries, which the rescan never reads) but take hours.

Timed: the daemon's start-up rescan, from its own ``rescan_finished`` line (files, new,
seconds), the whole start-up (process start to ``daemon_ready``) and the process's peak
RSS (VmHWM) once it is ready. Every file must be recognised: ``new`` must be 0.

The baseline keeps no state: it would submit all 100,000 files again.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import time
from pathlib import Path

from bench.common import (
    Context,
    Daemon,
    Row,
    daemon_config,
    log,
    mb,
    parse_ts,
    proc_status_kb,
    sandbox,
)

TARGET_SECONDS = 10.0
TARGET_MB = 300
PER_FOLDER = 1000


def _populate(root: Path, count: int) -> None:
    inbox = root / "inbox"
    rows = []
    now = time.time()
    for i in range(count):
        folder = inbox / f"team-{i // PER_FOLDER:03d}"
        if i % PER_FOLDER == 0:
            folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"call-{i:06d}.wav"
        content = f"recording {i}\n".encode()
        path.write_bytes(content)
        stat = path.stat()
        rows.append(
            (
                "inbox",
                str(inbox),
                path.relative_to(inbox).as_posix(),
                stat.st_size,
                stat.st_mtime,
                hashlib.sha256(content).hexdigest(),
                "done",
                f"{i:020d}",
                now,
                now,
            )
        )

    db = root / "state" / "state.db"
    from ingestd.store import SqliteStore

    SqliteStore(db).close()  # the daemon's schema, migrations and pragmas
    with sqlite3.connect(db) as conn:
        conn.executemany(
            "INSERT INTO recordings (watch, watch_root, relpath, size_bytes, mtime, sha256,"
            " state, sort_key, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
            rows,
        )
    conn.close()


def run(ctx: Context) -> list[Row]:
    count = 10_000 if ctx.quick else 100_000
    root = ctx.scratch("backlog")
    started = time.monotonic()
    _populate(root, count)
    log(f"backlog: {count:,} processed files set up in {time.monotonic() - started:.1f} s")
    os.sync()
    try:
        with sandbox(job_seconds=1.0, schedule_seconds=0.0, concurrency_limit=5) as box:
            config = daemon_config(root, box.url)
            daemon = Daemon(root, config)
            launched = time.time()
            with daemon:
                daemon.wait_ready(timeout=300)
                ready = daemon.where("daemon_ready")[0]
                rescan = daemon.where("rescan_finished")[0]
                time.sleep(2.0)  # anything started after the rescan (e.g. intake) shows too
                peak_kb = proc_status_kb(daemon.pid, "VmHWM")
                rss_kb = proc_status_kb(daemon.pid, "VmRSS")
                discovered = len(daemon.where("recording_discovered"))
    finally:
        ctx.cleanup(root)
    startup = parse_ts(ready["timestamp"]) - launched
    seconds = float(rescan["seconds"])
    ok = rescan["files"] == count and rescan["new"] == 0 and discovered == 0
    return [
        Row(
            benchmark="backlog",
            metric=f"start-up rescan of {count:,} processed files",
            ingestd=round(seconds, 2),
            ingestd_text=f"{seconds:.2f} s (start-up to ready {startup:.1f} s)",
            baseline_text=f"no state: re-submits all {count:,}",
            target=f"< {TARGET_SECONDS:g} s",
            passed=ok and seconds < TARGET_SECONDS,
            notes=f"files {rescan['files']:,}, new {rescan['new']}, re-discovered {discovered}",
            details={"rescan": rescan, "startup_s": startup},
        ),
        Row(
            benchmark="backlog",
            metric=f"daemon peak RSS after the {count:,}-file rescan",
            ingestd=mb(peak_kb),
            ingestd_text=f"{mb(peak_kb)} MB (now {mb(rss_kb)} MB)",
            baseline_text="n/a",
            target=f"< {TARGET_MB} MB",
            passed=ok and (mb(peak_kb) or 0) < TARGET_MB,
        ),
    ]
