"""`ingestd status` explains: why work in progress waits, what a failure still needs, and
that there is nothing yet; `ingestd dismiss` takes what needs nobody off the failures list."""

from __future__ import annotations

import json
import re
import time

from ingestd.lifecycle import State
from ingestd.store import SqliteStore, Store
from ingestd.testing import run_cli


def add(store: Store, env, relpath: str, *, key: str | None = None, **columns):
    row = store.insert(
        watch="inbox",
        watch_root=str(env.inbox),
        relpath=relpath,
        size_bytes=10,
        mtime=1.0,
        sha256=relpath,
        sort_key=relpath,
    )
    if key:
        store.update(row.id, conversation_key=key)
    return row


def to_state(store: Store, row_id: int, *states: State, **columns):
    for state in states:
        row = store.transition(row_id, state, **(columns if state is states[-1] else {}))
    return row


PREPARED = (State.PROBED, State.TRANSCODED, State.QUEUED)


class TestReasons:
    def test_each_recording_in_progress_says_what_it_waits_for(self, ingestd_env) -> None:
        """Back-off (until when, after what), an earlier part, a job slot, the API's job."""
        ingestd_env.write_config(symbl={"max_concurrent_jobs": 1})
        store = SqliteStore(ingestd_env.state_db)
        try:
            backoff = add(store, ingestd_env, "a-503.wav")
            until = time.time() + 3600
            store.update(
                backoff.id,
                attempts=2,
                next_attempt_at=until,
                error="the API answered 503 Service Unavailable",
            )
            first = add(store, ingestd_env, "m/part1.wav", key="folder:m")
            second = add(store, ingestd_env, "m/part2.wav", key="folder:m")
            to_state(store, second.id, *PREPARED)
            busy = add(store, ingestd_env, "b-busy.wav")
            to_state(store, busy.id, *PREPARED, State.SUBMITTING, State.SUBMITTED, job_id="j-77")
            waiting = add(store, ingestd_env, "c-slot.wav")
            to_state(store, waiting.id, *PREPARED)
        finally:
            store.close()
        result = run_cli(ingestd_env, "status")
        assert result.returncode == 0, result.stderr
        block = result.stdout.split("in progress\n", 1)[1].split("\n\n", 1)[0].splitlines()
        reasons = {
            re.search(r"inbox/(\S+)", block[i]).group(1): block[i + 1].strip()
            for i in range(0, len(block), 2)
        }
        hhmm = time.strftime("%H:%M", time.gmtime(until))
        # within the last hour of a UTC day the deadline is tomorrow's: the date comes first
        day = (
            ""
            if time.gmtime(until)[:3] == time.gmtime()[:3]
            else time.strftime("%Y-%m-%d ", time.gmtime(until))
        )
        assert re.fullmatch(
            rf"backing off until {day}{hhmm}:\d\dZ \(attempt 2\) after: the API answered 503 "
            r"Service Unavailable",
            reasons["a-503.wav"],
        ), reasons
        assert reasons["m/part2.wav"] == (
            "waiting for an earlier part of its conversation to be submitted"
        )
        assert reasons["c-slot.wav"] == (
            "waiting for a job slot (1 of 1 jobs in flight, max_concurrent_jobs)"
        )
        assert reasons["b-busy.wav"].startswith("waiting for job j-77 at the API")
        assert reasons["m/part1.wav"].startswith("waiting to be probed")
        data = json.loads(run_cli(ingestd_env, "status", "--json").stdout)
        by_path = {r["path"]: r["reason"] for r in data["in_progress"]}
        assert by_path == reasons
        assert first.id != second.id


class TestNothingYet:
    def test_missing_database_says_the_daemon_has_not_run(self, ingestd_env) -> None:
        """No database: one line saying why (exit 69, not a table of zeros)."""
        ingestd_env.write_config()
        result = run_cli(ingestd_env, "status")
        assert result.returncode == 69
        assert result.stdout == ""
        assert result.stderr.strip() == (
            f"ingestd: no state database at {ingestd_env.state_db} yet: the daemon has not run "
            f"with this config (`ingestd run` creates it), or state.url points somewhere else"
        )

    def test_empty_database_says_no_recordings_yet(self, ingestd_env) -> None:
        """The daemon ran but recorded nothing: one line, exit 0, not a table of zeros."""
        ingestd_env.write_config()
        SqliteStore(ingestd_env.state_db).close()
        result = run_cli(ingestd_env, "status")
        assert result.returncode == 0, result.stderr
        assert result.stdout == (
            f"no recordings yet in {ingestd_env.state_db}; files appear here once they settle\n"
        )


class TestDismiss:
    def test_gone_file_is_hinted_then_dismissed(self, ingestd_env) -> None:
        """A rejected recording whose file is gone says so under the failure; dismissed, it
        leaves the failures list and is counted as dismissed."""
        ingestd_env.write_config()
        store = SqliteStore(ingestd_env.state_db)
        try:
            gone = add(store, ingestd_env, "gone.wav")
            store.transition(gone.id, State.REJECTED, error="not media", failed_from="discovered")
            done = add(store, ingestd_env, "done.wav")
            to_state(store, done.id, *PREPARED, State.SUBMITTING, State.SUBMITTED)
            to_state(store, done.id, State.FETCHING, State.DELIVERING, State.DONE)
        finally:
            store.close()
        before = run_cli(ingestd_env, "status")
        failures = before.stdout.split("latest failures\n", 1)[1].splitlines()
        assert re.match(rf"  #{gone.id}\s+rejected .*inbox/gone\.wav$", failures[0])
        assert failures[1].strip() == "not media"
        assert failures[2].strip() == (
            f"its file is gone: `ingestd dismiss {gone.id}` (or `retry`) clears it"
        )

        dismissed = run_cli(ingestd_env, "dismiss", str(gone.id))
        assert dismissed.returncode == 0, dismissed.stderr
        assert (
            dismissed.stdout == f"#{gone.id} gone.wav: rejected -> dismissed (its file is gone)\n"
        )
        after = run_cli(ingestd_env, "status")
        assert "latest failures" not in after.stdout
        assert re.search(r"^dismissed\s+1$", after.stdout, re.MULTILINE), after.stdout

        again = run_cli(ingestd_env, "dismiss", str(done.id))
        assert again.returncode == 1
        assert again.stdout == f"#{done.id} done.wav: done, not failed or rejected; left alone\n"
        unknown = run_cli(ingestd_env, "dismiss", "999")
        assert unknown.returncode == 1
        assert unknown.stderr == (
            "ingestd: no recording #999 in the state database; `ingestd status` lists them\n"
        )
