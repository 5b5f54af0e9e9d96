"""The slack sink inside the real daemon: redeliver, a permanent error, an outage.

Each test runs `ingestd run` as a subprocess against the sandbox and the fake Slack, and
the operator commands as subprocesses too, so sink names, receipts and the outbox are
exercised the way an installation uses them.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

from ingestd.testing import IngestdEnv, drop, run_cli, wait_for
from tests.slack.fake import TOKEN, FakeSlack


def bot(slack: FakeSlack, name: str | None = None, channel: str = "C0123456789") -> dict:
    """A slack sink block in bot mode, posting to the fake Slack."""
    sink = {
        "type": "slack",
        "token": TOKEN,
        "channel": channel,
        "api_base_url": slack.api_url,
        "timeout_seconds": 10,
    }
    return {**sink, "name": name} if name else sink


cli = run_cli


def outbox(env: IngestdEnv) -> dict[str, dict[str, Any]]:
    """sink -> its deliveries row (one recording per test)."""
    connection = sqlite3.connect(f"file:{env.state_db}?mode=ro", uri=True, timeout=10)
    with contextlib.closing(connection) as conn:
        conn.row_factory = sqlite3.Row
        return {r["sink"]: dict(r) for r in conn.execute("SELECT * FROM deliveries")}


def delivered_again(env: IngestdEnv, sink: str, path: str) -> None:
    """Wait until a redelivery queued by the CLI has finished (the CLI left it pending)."""
    env.wait_states({path: "done"})
    wait_for(lambda: outbox(env)[sink]["state"] == "done", 30, f"{sink} to deliver again")


def uploads(sandbox: Any) -> int:
    return len([s for s in sandbox.submissions() if s["created"]])


def test_redeliver_updates_the_message_instead_of_posting_again(
    ingestd_env, sandbox, slack, make_media
) -> None:
    """`ingestd redeliver CID --sink bot` edits the bot's earlier message with chat.update
    (the channel and ts of its receipt): one postMessage and one update in all."""
    daemon = ingestd_env.daemon(sinks=[bot(slack, "bot")]).start()
    daemon.wait_ready()
    drop(make_media("call.wav"), ingestd_env.inbox)
    ingestd_env.wait_states({"call.wav": "done"})
    [row] = ingestd_env.rows()
    first = json.loads(outbox(ingestd_env)["bot"]["detail"])
    redeliver = cli(ingestd_env, "redeliver", row["conversation_id"], "--sink", "bot")
    assert redeliver.returncode == 0, redeliver.stderr
    delivered_again(ingestd_env, "bot", "call.wav")
    assert len(slack.calls("chat.postMessage")) == 1
    [update] = slack.calls("chat.update")
    assert (update.body["channel"], update.body["ts"]) == (first["channel"], first["ts"])
    assert json.loads(outbox(ingestd_env)["bot"]["detail"]) == {**first, "updated": True}
    assert uploads(sandbox) == 1
    assert daemon.stop() == 0


def test_redeliver_after_a_permanent_error_finishes_the_recording(
    ingestd_env, sandbox, slack, make_media
) -> None:
    """A bot not in its channel fails the delivery with a hint naming `ingestd redeliver`;
    once invited, following the hint posts the message, leaves the done sink alone and
    uploads nothing again."""
    sinks = [
        {"type": "files", "path": str(ingestd_env.results)},
        bot(slack, "bot", channel="C0000000002"),
    ]
    daemon = ingestd_env.daemon(sinks=sinks).start()
    daemon.wait_ready()
    drop(make_media("call.wav"), ingestd_env.inbox)
    ingestd_env.wait_states({"call.wav": "failed"})
    [row] = ingestd_env.rows()
    assert "not_in_channel" in row["error"], row["error"]
    assert "`ingestd redeliver CONVERSATION_ID --sink bot`" in row["error"]
    status = cli(ingestd_env, "status").stdout  # where the operator finds both
    assert f"call.wav (conversation {row['conversation_id']})" in status
    assert "--sink bot" in status
    written = next(ingestd_env.results.rglob("insights.json")).stat().st_mtime_ns
    slack.not_in_channel.clear()  # the operator invites the bot
    redeliver = cli(ingestd_env, "redeliver", row["conversation_id"], "--sink", "bot")
    assert redeliver.returncode == 0, redeliver.stderr
    delivered_again(ingestd_env, "bot", "call.wav")
    assert [p["channel"] for p in slack.posted] == ["C0000000002"]
    assert next(ingestd_env.results.rglob("insights.json")).stat().st_mtime_ns == written
    assert outbox(ingestd_env)["files"]["attempts"] == 1
    assert uploads(sandbox) == 1
    assert daemon.stop() == 0


def test_redeliver_names_repeated_sinks_as_the_daemon_does(
    ingestd_env, sandbox, slack, make_media
) -> None:
    """Two unnamed slack sinks are ``slack`` and ``slack-1`` for the daemon and for
    `ingestd redeliver --sink`, which updates only the second one's message."""
    sinks = [bot(slack), bot(slack, channel="#sales-calls")]
    daemon = ingestd_env.daemon(sinks=sinks).start()
    daemon.wait_ready()
    drop(make_media("call.wav"), ingestd_env.inbox)
    ingestd_env.wait_states({"call.wav": "done"})
    assert sorted(outbox(ingestd_env)) == ["slack", "slack-1"]
    [row] = ingestd_env.rows()
    receipts = {sink: json.loads(d["detail"]) for sink, d in outbox(ingestd_env).items()}
    assert receipts["slack"]["ts"] != receipts["slack-1"]["ts"]
    redeliver = cli(ingestd_env, "redeliver", row["conversation_id"], "--sink", "slack-1")
    assert redeliver.returncode == 0, redeliver.stderr
    assert "redelivery to slack-1 queued" in redeliver.stdout
    delivered_again(ingestd_env, "slack-1", "call.wav")
    [update] = slack.calls("chat.update")
    assert (update.body["channel"], update.body["ts"]) == (
        receipts["slack-1"]["channel"],
        receipts["slack-1"]["ts"],
    )
    assert len(slack.calls("chat.postMessage")) == 2
    assert json.loads(outbox(ingestd_env)["slack"]["detail"]) == receipts["slack"]
    assert daemon.stop() == 0


def database_rows(path: Path) -> dict[str, list[tuple]]:
    """Every row of the database sink's conversation tables, for before/after comparisons."""
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        tables = [
            "conversations",
            "parts",
            "messages",
            "topics",
            "questions",
            "action_items",
            "follow_ups",
            "members",
        ]
        return {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall() for t in tables}


def test_slack_down_for_a_while(ingestd_env, sandbox, slack, make_media) -> None:
    """Slack answers 500 twice, then 429 with Retry-After: 2, then recovers: exactly one
    message is posted, the retry after the 429 waits the 2 s asked for, and the database
    sink beside it delivers once and is never rewritten. Three failed deliveries outlast a
    stage's budget of two attempts: sinks have their own, longer one."""
    results_db = ingestd_env.root / "results.db"
    sinks = [{"type": "database", "name": "db", "url": f"sqlite:///{results_db}"}, bot(slack)]
    slack.fail(500, times=2)
    slack.rate_limit(times=1, retry_after=2)
    daemon = ingestd_env.daemon(
        sinks=sinks,
        pipeline={"max_attempts": 2, "retry_initial_seconds": 0.2, "retry_max_seconds": 0.5},
    ).start()
    daemon.wait_ready()
    drop(make_media("call.wav"), ingestd_env.inbox)
    wait_for(lambda: outbox(ingestd_env).get("db", {}).get("state") == "done", 60, "db done")
    written, db_delivery = database_rows(results_db), outbox(ingestd_env)["db"]
    ingestd_env.wait_states({"call.wav": "done"})
    posts = slack.calls("chat.postMessage")
    assert len(posts) == 4 and len(slack.posted) == 1
    # Back-off never exceeds retry_max_seconds (0.5 s) here: only Slack's Retry-After
    # explains the 2 s after the 429.
    assert posts[3].at - posts[2].at >= 2.0, [p.at for p in posts]
    sinks_done = {sink: (d["state"], d["attempts"]) for sink, d in outbox(ingestd_env).items()}
    assert sinks_done == {"db": ("done", 1), "slack": ("done", 4)}
    delivered = Counter(e["sink"] for e in daemon.events() if e.get("event") == "sink_delivered")
    assert delivered == {"db": 1, "slack": 1}
    assert database_rows(results_db) == written
    assert outbox(ingestd_env)["db"] == db_delivery
    assert len(written["conversations"]) == 1
    assert daemon.stop() == 0


def test_a_post_whose_answer_was_lost_is_not_posted_twice(
    ingestd_env, sandbox, slack, make_media
) -> None:
    """Slack posts the message but the answer never arrives: the daemon logs the doubt,
    and its retry finds the message by its metadata in the channel's history, so the
    channel shows one message, and the receipt names it."""
    slack.lose_answer()
    daemon = ingestd_env.daemon(sinks=[bot(slack, "bot")]).start()
    daemon.wait_ready()
    drop(make_media("call.wav"), ingestd_env.inbox)
    ingestd_env.wait_states({"call.wav": "done"})
    wait_for(lambda: outbox(ingestd_env)["bot"]["state"] == "done", 30, "bot delivered")
    assert daemon.has_event("slack_post_outcome_unknown", sink="bot", can_look=True)
    [stored] = slack.messages
    assert len(slack.calls("chat.postMessage")) == 1
    assert len(slack.calls("conversations.history")) == 1
    receipt = json.loads(outbox(ingestd_env)["bot"]["detail"])
    assert receipt["ts"] == stored["message"]["ts"]
    assert daemon.stop() == 0
