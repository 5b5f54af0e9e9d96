"""The per-sink outbox: each sink delivered and tracked on its own, across crashes."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingestd.testing import drop, wait_for
from tests.slack.fake import PROXY_VARIABLES, TOKEN, FakeSlack, serve_fake_slack

# A third-party-style sink, loaded from a local file named in the YAML: it records every
# delivery in a JSON-lines file and, while a "hold" file exists, blocks forever (a sink
# that is down) or fails (a sink that errors).
GATE_PLUGIN = """
import asyncio, json
from pathlib import Path
from ingestd import DeliveryReceipt, Retryable, hookimpl

class Gate:
    def __init__(self, options, context):
        self.name = context.name
        self.log = Path(options["log"])
        self.hold = Path(options["hold"])
        self.mode = options.get("mode", "block")

    async def deliver(self, result):
        while self.hold.exists():
            if self.mode == "fail":
                raise Retryable("gate is down")
            await asyncio.sleep(0.05)
        with open(self.log, "a") as handle:
            handle.write(json.dumps({"conversation": result.conversation_id,
                                     "parts": len(result.parts),
                                     "messages": len(result.insights.messages)}) + "\\n")
        return DeliveryReceipt(sink=self.name, detail={"ok": True})

    async def aclose(self):
        pass

@hookimpl
def ingestd_register_sinks(register):
    register("gate", Gate)
"""


def gate_env(env, mode: str = "block"):
    plugin = env.root / "gate_plugin.py"
    plugin.write_text(GATE_PLUGIN)
    hold = env.root / "hold"
    log = env.root / "gate.jsonl"
    sinks = [
        {"type": "files", "path": str(env.results)},
        {"type": "gate", "name": "gate", "log": str(log), "hold": str(hold), "mode": mode},
    ]
    return plugin, hold, log, sinks


def deliveries(env) -> dict[str, dict]:
    with sqlite3.connect(env.state_db) as conn:
        conn.row_factory = sqlite3.Row
        return {r["sink"]: dict(r) for r in conn.execute("SELECT * FROM deliveries")}


def delivered(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_crash_between_sinks_then_the_second_still_delivers(
    ingestd_env, sandbox, make_media
) -> None:
    """Killed while one sink hangs, the restart delivers only that sink; nothing resubmitted."""
    plugin, hold, log, sinks = gate_env(ingestd_env)
    hold.touch()
    daemon = ingestd_env.daemon(plugins=[str(plugin)], sinks=sinks).start()
    daemon.wait_ready()
    drop(make_media("call.wav"), ingestd_env.inbox)
    wait_for(
        lambda: deliveries(ingestd_env).get("files", {}).get("state") == "done",
        60,
        "the files sink to deliver",
    )
    assert deliveries(ingestd_env)["gate"]["state"] == "pending"
    daemon.kill()
    first_results = next(ingestd_env.results.rglob("insights.json")).stat().st_mtime_ns
    hold.unlink()
    restarted = ingestd_env.daemon().start()
    ingestd_env.wait_states({"call.wav": "done"})
    assert len(delivered(log)) == 1
    assert next(ingestd_env.results.rglob("insights.json")).stat().st_mtime_ns == first_results
    assert len([s for s in sandbox.submissions() if s["created"]]) == 1
    assert restarted.stop() == 0


@pytest.fixture
def slack(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSlack]:
    """The fake Slack of tests/slack, with no proxy between it and the daemon."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    with serve_fake_slack() as fake:
        yield fake


def database_rows(path: Path) -> dict[str, list[tuple]]:
    """Every row of the database sink's tables, to compare before and after."""
    tables = ("conversations", "parts", "messages", "topics", "questions", "members")
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        return {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall() for t in tables}


def test_crash_between_database_and_slack_then_only_slack_delivers(
    ingestd_env, sandbox, slack, make_media
) -> None:
    """Killed after the database sink delivered but while Slack held its answer, the restart
    posts to Slack once and leaves the database rows exactly as they were; nothing is
    uploaded again."""
    results_db = ingestd_env.root / "results.db"
    bot = {"type": "slack", "name": "bot", "token": TOKEN, "channel": "C0123456789"}
    sinks = [
        {"type": "database", "name": "db", "url": f"sqlite:///{results_db}"},
        {**bot, "api_base_url": slack.api_url, "timeout_seconds": 60},
    ]
    slack.hold_seconds = 60  # Slack acts on nothing until then, or until the caller is gone
    daemon = ingestd_env.daemon(sinks=sinks).start()
    daemon.wait_ready()
    drop(make_media("call.wav"), ingestd_env.inbox)
    wait_for(lambda: slack.requests, 60, "the Slack request")
    wait_for(lambda: deliveries(ingestd_env)["db"]["state"] == "done", 30, "the database sink")
    assert deliveries(ingestd_env)["bot"]["state"] == "pending"
    written, db_delivery = database_rows(results_db), deliveries(ingestd_env)["db"]
    daemon.kill()
    wait_for(lambda: slack.abandoned, 10, "Slack to see the caller hang up")
    assert slack.posted == []
    slack.hold_seconds = 0
    restarted = ingestd_env.daemon().start()
    ingestd_env.wait_states({"call.wav": "done"})
    assert len(slack.posted) == 1 and len(slack.requests) == 2
    assert database_rows(results_db) == written
    assert [len(written[t]) for t in ("conversations", "parts")] == [1, 1]
    assert deliveries(ingestd_env)["db"] == db_delivery  # not even its updated_at moved
    assert [e["sink"] for e in restarted.events() if e.get("event") == "sink_delivered"] == ["bot"]
    outbox = {sink: (d["state"], d["attempts"]) for sink, d in deliveries(ingestd_env).items()}
    assert outbox == {"db": ("done", 1), "bot": ("done", 1)}
    assert len([s for s in sandbox.submissions() if s["created"]]) == 1
    assert restarted.stop() == 0


def test_failing_sink_never_blocks_the_other(ingestd_env, sandbox, make_media) -> None:
    """While one sink keeps failing, the other delivers every recording; the failing one
    catches up once it recovers."""
    plugin, hold, log, sinks = gate_env(ingestd_env, mode="fail")
    hold.touch()
    daemon = ingestd_env.daemon(
        plugins=[str(plugin)], sinks=sinks, pipeline={"max_attempts": 50}
    ).start()
    daemon.wait_ready()
    for i in range(3):
        drop(make_media(f"rec{i}.wav"), ingestd_env.inbox)
    wait_for(
        lambda: len(list(ingestd_env.results.rglob("insights.json"))) == 3,
        60,
        "files results for all three",
    )
    assert delivered(log) == []
    assert daemon.has_event("sink_retry_scheduled", sink="gate")
    hold.unlink()
    ingestd_env.wait_states({f"rec{i}.wav": "done" for i in range(3)})
    assert len(delivered(log)) == 3
    daemon.stop()


def test_append_redelivers_the_updated_conversation(ingestd_env, sandbox, make_media) -> None:
    """After part 2 is appended, sinks receive the conversation again with both parts."""
    plugin, _, log, sinks = gate_env(ingestd_env)
    daemon = ingestd_env.daemon(
        plugins=[str(plugin)], sinks=sinks, watch={"conversation": {"by": "folder"}}
    ).start()
    daemon.wait_ready()
    drop(make_media("part1.wav"), ingestd_env.inbox / "m")
    ingestd_env.wait_states({"m/part1.wav": "done"})
    drop(make_media("part2.wav"), ingestd_env.inbox / "m")
    ingestd_env.wait_states({"m/part2.wav": "done"})
    first, second = delivered(log)
    assert first["conversation"] == second["conversation"]
    assert (first["parts"], second["parts"]) == (1, 2)
    assert second["messages"] > first["messages"]
    daemon.stop()


def test_a_sink_waiting_without_its_insights_file_fetches_them_again(
    ingestd_env, sandbox, make_media
) -> None:
    """A recording waiting in ``delivering`` whose insights file is gone (fetched by a node
    that died, each node having its own work directory; or removed) reads the insights from
    the API again and delivers; nothing is uploaded again."""
    plugin, hold, log, sinks = gate_env(ingestd_env, mode="fail")
    hold.touch()
    daemon = ingestd_env.daemon(
        plugins=[str(plugin)], sinks=sinks, pipeline={"max_attempts": 50}
    ).start()
    daemon.wait_ready()
    drop(make_media("call.wav"), ingestd_env.inbox)
    wait_for(lambda: daemon.has_event("sink_retry_scheduled", sink="gate"), 60, "a gate retry")
    [row] = ingestd_env.rows()
    assert row["state"] == "delivering"
    Path(row["insights_path"]).unlink()
    hold.unlink()
    ingestd_env.wait_states({"call.wav": "done"})
    assert daemon.has_event("insights_fetched_again", missing=row["insights_path"])
    assert [d["messages"] > 0 for d in delivered(log)] == [True]
    assert len(sandbox.submissions()) == 1
    daemon.stop()
