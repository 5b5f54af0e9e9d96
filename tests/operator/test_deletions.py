"""Deleting conversations at the API: the daemon and the CLI as subprocesses against the
sandbox, which counts what was deleted and answers 404 for it afterwards."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx

from ingestd.testing import drop, run_cli, wait_for
from tests.acceptance.test_outbox import gate_env


def _gone_at_api(sandbox, conversation_id: str) -> bool:
    """The API answers 404 for the conversation (a real GET with a real token)."""
    token = httpx.post(
        f"{sandbox.url}/oauth2/token:generate",
        json={"type": "application", "appId": "sandbox", "appSecret": "sandbox"},
    ).json()["accessToken"]
    response = httpx.get(
        f"{sandbox.url}/v1/conversations/{conversation_id}",
        headers={"Authorization": f"Bearer {token}"},
    )
    return response.status_code == 404


def _story(env, recording: str) -> dict:
    result = run_cli(env, "show", recording, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_delete_after_delivery_deletes_once_every_sink_has_it(
    ingestd_env, sandbox, make_media
) -> None:
    """A conversation of its own is deleted after delivery, retried through API errors;
    the results stay; status and show say so."""
    # the first try fails at the client after its own retries: the daemon tries again later
    sandbox.faults.arm(
        {"kind": "status", "status": 503, "times": 3, "route": "conversation_delete"}
    )
    daemon = ingestd_env.daemon(
        symbl={"delete_after_delivery": True, "max_retries": 1, "backoff_initial_seconds": 0.05}
    ).start()
    daemon.wait_ready()
    drop(make_media("call.wav"), ingestd_env.inbox)
    ingestd_env.wait_states({"call.wav": "done"})
    cid = ingestd_env.rows()[0]["conversation_id"]
    wait_for(lambda: cid not in sandbox.conversations(), 60, "the conversation's deletion")
    assert _gone_at_api(sandbox, cid)
    assert sandbox.stats()["faults_fired"] == {"status": 3}
    assert list(ingestd_env.results.rglob("insights.json")), "delivered before the deletion"
    wait_for(lambda: daemon.has_event("conversation_deleted_at_api"), 10, "the log line")
    daemon.stop()
    [deletion] = _story(ingestd_env, "call.wav")["api_deletions"]
    assert deletion["conversation_id"] == cid and deletion["reason"] == "delivered"
    assert deletion["state"] == "deleted" and deletion["attempts"] >= 2
    status = json.loads(run_cli(ingestd_env, "status", "--json").stdout)
    assert status["api_deletions"] == {"deleted": 1}
    assert "api deletions:  deleted 1" in run_cli(ingestd_env, "status").stdout


def test_a_sink_not_done_holds_the_deletion_back(ingestd_env, sandbox, make_media) -> None:
    """While one sink has not confirmed delivery the conversation stays at the API; once it
    has, the conversation is deleted."""
    plugin, hold, _, sinks = gate_env(ingestd_env)
    hold.touch()
    daemon = ingestd_env.daemon(
        symbl={"delete_after_delivery": True}, plugins=[str(plugin)], sinks=sinks
    ).start()
    daemon.wait_ready()
    drop(make_media("call.wav"), ingestd_env.inbox)
    ingestd_env.wait_states({"call.wav": "delivering"})
    wait_for(lambda: list(ingestd_env.results.rglob("insights.json")), 30, "the files sink")
    cid = ingestd_env.rows()[0]["conversation_id"]
    time.sleep(1.5)  # a window of three rounds of the deletion loop: none may delete it
    assert cid in sandbox.conversations()
    hold.unlink()
    ingestd_env.wait_states({"call.wav": "done"})
    wait_for(lambda: cid not in sandbox.conversations(), 30, "the deletion after delivery")
    daemon.stop()


def test_mapped_conversation_waits_for_close(ingestd_env, sandbox, make_media) -> None:
    """Parts appended under a key: deleted only after `ingestd close KEY`, never before."""
    daemon = ingestd_env.daemon(
        symbl={"delete_after_delivery": True}, watch={"conversation": {"by": "folder"}}
    ).start()
    daemon.wait_ready()
    drop(make_media("a-1.wav"), ingestd_env.inbox / "meet")
    ingestd_env.wait_states({"meet/a-1.wav": "done"})
    drop(make_media("a-2.wav"), ingestd_env.inbox / "meet")
    ingestd_env.wait_states({"meet/a-2.wav": "done"})
    cid = ingestd_env.rows()[0]["conversation_id"]
    assert {r["conversation_id"] for r in ingestd_env.rows()} == {cid}
    assert cid in sandbox.conversations()
    [mapping] = json.loads(run_cli(ingestd_env, "map", "--json").stdout)
    closed = run_cli(ingestd_env, "close", mapping["key"])
    assert closed.returncode == 0, closed.stderr
    assert "deleted at the API once every part" in closed.stdout
    wait_for(lambda: cid not in sandbox.conversations(), 30, "the deletion after close")
    assert json.loads(run_cli(ingestd_env, "map", "--json").stdout) == []
    # a new part after the close starts a new conversation
    drop(make_media("a-3.wav"), ingestd_env.inbox / "meet")
    ingestd_env.wait_states({"meet/a-3.wav": "done"})
    newest = ingestd_env.rows()[-1]["conversation_id"]
    assert newest != cid and newest in sandbox.conversations()
    daemon.stop()
    missing = run_cli(ingestd_env, "close", "no-such-key")
    assert missing.returncode == 1 and "no conversation is mapped" in missing.stderr


def test_close_after_minutes_closes_and_deletes_by_itself(ingestd_env, sandbox, make_media) -> None:
    """No new part for `close_after_minutes`: the key is closed and its conversation deleted."""
    daemon = ingestd_env.daemon(
        symbl={"delete_after_delivery": True},
        watch={"conversation": {"by": "folder", "close_after_minutes": 0.03}},
    ).start()
    daemon.wait_ready()
    drop(make_media("b-1.wav"), ingestd_env.inbox / "meet")
    ingestd_env.wait_states({"meet/b-1.wav": "done"})
    cid = ingestd_env.rows()[0]["conversation_id"]
    wait_for(lambda: cid not in sandbox.conversations(), 30, "the deletion after the quiet time")
    assert daemon.has_event("conversation_closed", conversation_id=cid)
    daemon.stop()
    assert _story(ingestd_env, "meet/b-1.wav")["api_deletions"][0]["reason"] == "closed"


def test_forget_deletes_on_demand_and_unmaps(ingestd_env, sandbox, make_media) -> None:
    """`ingestd forget ID` deletes at once (no setting needed) and forgets keys mapped to it;
    a second forget says it is already gone."""
    daemon = ingestd_env.daemon(watch={"conversation": {"by": "folder"}}).start()
    daemon.wait_ready()
    drop(make_media("c-1.wav"), ingestd_env.inbox / "meet")
    ingestd_env.wait_states({"meet/c-1.wav": "done"})
    daemon.stop()
    cid = ingestd_env.rows()[0]["conversation_id"]
    first = run_cli(ingestd_env, "forget", cid)
    assert first.returncode == 0, first.stderr
    assert (
        f"conversation {cid} deleted at the API" in first.stdout and "no longer map" in first.stdout
    )
    assert _gone_at_api(sandbox, cid)
    again = run_cli(ingestd_env, "forget", cid)
    assert again.returncode == 0 and "already deleted" in again.stdout
    assert json.loads(run_cli(ingestd_env, "map", "--json").stdout) == []
    [deletion] = _story(ingestd_env, "meet/c-1.wav")["api_deletions"]
    assert (deletion["reason"], deletion["state"]) == ("forget", "deleted")


def test_forget_that_fails_says_so_in_one_line(ingestd_env, sandbox, make_media) -> None:
    """The API failing the delete: exit 1, one line, recorded as failed."""
    daemon = ingestd_env.daemon(symbl={"max_retries": 0}).start()
    daemon.wait_ready()
    drop(make_media("d.wav"), ingestd_env.inbox)
    ingestd_env.wait_states({"d.wav": "done"})
    daemon.stop()
    cid = ingestd_env.rows()[0]["conversation_id"]
    sandbox.faults.arm(
        {"kind": "status", "status": 503, "times": 5, "route": "conversation_delete"}
    )
    result = run_cli(ingestd_env, "forget", cid)
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1 and "was not deleted" in result.stderr
    assert cid in sandbox.conversations()
    assert _story(ingestd_env, "d.wav")["api_deletions"][0]["state"] == "failed"


def test_delete_failed_conversations_removes_the_abandoned_one(
    ingestd_env, sandbox, make_media
) -> None:
    """The API fails a job: the file is POSTed again and, once that is submitted, the empty
    conversation of the failed job is deleted; the replacement stays."""
    sandbox.faults.arm({"kind": "fail_job", "times": 1})
    daemon = ingestd_env.daemon(symbl={"delete_failed_conversations": True}).start()
    daemon.wait_ready()
    drop(make_media("e.wav"), ingestd_env.inbox)
    ingestd_env.wait_states({"e.wav": "done"})
    posts = [s for s in sandbox.submissions() if s["created"]]
    assert len(posts) == 2
    abandoned, kept = posts[0]["conversationId"], posts[1]["conversationId"]
    assert ingestd_env.rows()[0]["conversation_id"] == kept
    wait_for(lambda: abandoned not in sandbox.conversations(), 30, "the abandoned one deleted")
    assert kept in sandbox.conversations()
    daemon.stop()
    [deletion] = _story(ingestd_env, "e.wav")["api_deletions"]
    assert (deletion["conversation_id"], deletion["reason"]) == (abandoned, "abandoned")


def test_failed_conversations_stay_by_default(ingestd_env, sandbox, make_media) -> None:
    """Without the setting the abandoned conversation stays at the API (nothing deleted)."""
    sandbox.faults.arm({"kind": "fail_job", "times": 1})
    daemon = ingestd_env.daemon().start()
    daemon.wait_ready()
    drop(make_media("f.wav"), ingestd_env.inbox)
    ingestd_env.wait_states({"f.wav": "done"})
    daemon.stop()
    posts = [s for s in sandbox.submissions() if s["created"]]
    assert len(posts) == 2 and posts[0]["conversationId"] in sandbox.conversations()
    assert sandbox.state.counters().get("conversations_deleted", 0) == 0


def test_the_settings_are_checked() -> None:
    """A non-boolean switch and a bad close_after_minutes are config errors naming the key."""
    import pytest

    from ingestd.config import WatchConfig
    from ingestd.errors import ConfigError
    from ingestd_mapping.options import parse_options
    from ingestd_symbl.options import from_mapping

    ok = from_mapping({"base_url": "sandbox", "delete_after_delivery": True})
    assert ok.delete_after_delivery and not ok.delete_failed_conversations
    with pytest.raises(ConfigError) as bad:
        from_mapping({"base_url": "sandbox", "delete_failed_conversations": "yes"})
    assert bad.value.problems == [
        "symbl.delete_failed_conversations: expected true or false, got 'yes'"
    ]
    for conversation, message in (
        ({"by": "folder", "close_after_minutes": 0}, "expected a number of minutes > 0"),
        ({"close_after_minutes": 5}, "only used when parts are mapped"),
    ):
        watch = WatchConfig(name="w", path=Path("/tmp"), conversation=conversation)
        with pytest.raises(ConfigError, match=message):
            parse_options(watch)


def test_a_version_1_store_gains_the_new_tables(tmp_path) -> None:
    """The migration adds dispositions and api_deletions to a database of schema 1."""
    import sqlite3

    from ingestd.store import SqliteStore

    SqliteStore(tmp_path / "state.db").close()
    with sqlite3.connect(tmp_path / "state.db") as conn:
        conn.executescript(
            "DROP TABLE dispositions; DROP TABLE api_deletions; PRAGMA user_version = 1;"
        )
    store = SqliteStore(tmp_path / "state.db")
    assert store.request_deletion("123", "forget")
    assert store.deletion_counts() == {"pending": 1}
    store.close()
