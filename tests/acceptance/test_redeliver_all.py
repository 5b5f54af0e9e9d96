"""`ingestd redeliver --all`: a sink added to a setup with done recordings gets every done
conversation, once however often it is run (issue 15, point 6)."""

from __future__ import annotations

import sqlite3
import time

from ingestd.store import open_store
from ingestd.testing import drop, run_cli, wait_for


def database_rows(path) -> dict[str, int]:
    with sqlite3.connect(path) as conn:
        return {
            table: conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            for table in ("conversations", "parts", "messages")
        }


def redelivered_after(env, moment: float, count: int) -> bool:
    """Every recording done, and `count` of them (each conversation's latest part) done
    again since `moment`."""
    rows = env.rows()
    again = [r for r in rows if r["updated_at"] > moment]
    return all(r["state"] == "done" for r in rows) and len(again) == count


def test_a_sink_added_later_is_backfilled_once(ingestd_env, sandbox, make_media) -> None:
    files_only = {"conversation": {"by": "folder"}}
    daemon = ingestd_env.daemon(watch=files_only).start()
    daemon.wait_ready()
    drop(make_media("a.wav"), ingestd_env.inbox)
    drop(make_media("b.wav"), ingestd_env.inbox)
    drop(make_media("p1.wav"), ingestd_env.inbox / "meeting")
    drop(make_media("p2.wav"), ingestd_env.inbox / "meeting")
    done = {"a.wav": "done", "b.wav": "done", "meeting/p1.wav": "done", "meeting/p2.wav": "done"}
    ingestd_env.wait_states(done)
    assert daemon.stop() == 0
    uploads = len(sandbox.submissions())

    database = ingestd_env.root / "results.db"
    sinks = [
        {"type": "files", "path": str(ingestd_env.results)},
        {"type": "database", "url": f"sqlite:///{database}"},
    ]
    daemon = ingestd_env.daemon(watch=files_only, sinks=sinks).start()
    daemon.wait_ready()
    assert not database.exists() or database_rows(database)["conversations"] == 0

    future = run_cli(ingestd_env, "redeliver", "--all", "--since", "2999-01-01")
    assert future.returncode == 0, future.stderr
    assert future.stdout.startswith("0 done conversations finished since 2999-01-0")

    for round_ in (1, 2):
        moment = time.time()
        result = run_cli(ingestd_env, "redeliver", "--all", "--sink", "database")
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("3 done conversations queued for redelivery to database")
        wait_for(lambda m=moment: redelivered_after(ingestd_env, m, 3), 60, f"redelivery {round_}")
        counts = database_rows(database)
        assert (counts["conversations"], counts["parts"]) == (3, 4), counts
        if round_ == 1:
            first = counts
        assert counts == first, "the second run added nothing"
    assert len(sandbox.submissions()) == uploads, "nothing uploaded again"
    assert daemon.stop() == 0


def test_redeliver_needs_an_id_or_all(ingestd_env) -> None:
    """Neither a conversation id nor --all (or both) is a usage error, exit 2."""
    ingestd_env.write_config()
    open_store(ingestd_env.state_db).close()
    assert run_cli(ingestd_env, "redeliver").returncode == 2
    assert run_cli(ingestd_env, "redeliver", "123", "--all").returncode == 2
    assert run_cli(ingestd_env, "redeliver", "123", "--since", "2026-01-01").returncode == 2
