"""The database sink on SQLite, PostgreSQL and MariaDB: rows, redelivery, interruption."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

import ingestd_database.sink as sink_module
from ingestd.errors import Retryable
from ingestd.plugins import load_plugins
from ingestd.registry import Sink
from ingestd_database.sink import DatabaseSink, make_database_sink
from tests.database.conftest import Database
from tests.database.fixtures import (
    APPENDED,
    CID,
    MESSAGES,
    OTHER_CID,
    appended,
    at,
    insights,
    message,
    result,
)


def deliver(sink: DatabaseSink, *args: Any, **kwargs: Any) -> dict[str, Any]:
    return asyncio.run(sink.deliver(result(*args, **kwargs))).detail


def column(rows: list[dict[str, Any]], name: str) -> list[Any]:
    return [row[name] for row in rows]


class TestFirstDelivery:
    def test_creates_tables_and_rows_with_the_right_values(self, db: Database) -> None:
        """Conversation, part, speakers, times, sentiment and assignees land as sent."""
        detail = deliver(db.sink())
        assert detail == {
            "conversation_id": CID,
            "database": db.sinks[0].options.display_url,
            "changed": True,
            "parts": 1,
            "messages": 2,
            "topics": 1,
            "questions": 1,
            "action_items": 1,
            "follow_ups": 1,
            "members": 2,
            "removed": 0,
        }
        [conversation] = db.rows("conversations")
        assert conversation["id"] == CID
        assert conversation["name"] == "Weekly sync"
        assert conversation["start_time"] == at(5, 10)
        assert conversation["end_time"] == at(5, 10, 5)
        assert conversation["parts"] == 1
        assert conversation["raw"] == insights().conversation
        assert conversation["summary"] == insights().summary
        assert conversation["created_at"] == conversation["updated_at"]
        [part] = db.rows("parts")
        assert {k: v for k, v in part.items() if k != "mtime"} == {
            "conversation_id": CID,
            "position": 0,
            "recording_id": 1,
            "watch": "w",
            "relpath": "part0.wav",
            "sha256": "01" * 32,
            "size_bytes": 10,
        }
        first = db.rows("messages")[0]
        assert {k: v for k, v in first.items() if k != "raw"} == {
            "conversation_id": CID,
            "id": "m1",
            "position": 0,
            "text": "Hi Bob, can we ship the deck by Friday?",
            "speaker_id": "u-Alice",
            "speaker_name": "Alice",
            "speaker_email": "alice@example.com",
            "start_time": at(5, 10, 0, 0.5),
            "end_time": at(5, 10, 0, 3.75),
            "time_offset": 0.5,
            "duration": 3.25,
            "sentiment_score": 0.25,
            "sentiment": "positive",
            "phrases": [],
        }
        assert first["raw"] == MESSAGES[0]
        [action] = db.rows("action_items")
        assert (action["assignee_name"], action["assignee_email"], action["assignee_id"]) == (
            "Bob",
            "bob@example.com",
            "u-Bob",
        )
        assert action["due_by"] == at(6, 22)  # 17:00 at UTC-5
        assert action["definitive"] is True
        assert action["entities"] == [{"type": "date", "text": "tomorrow", "offset": 20}]
        [question] = db.rows("questions")
        assert (question["speaker_name"], question["speaker_email"]) == (
            "Alice",
            "alice@example.com",
        )
        [topic] = db.rows("topics")
        assert (topic["text"], topic["score"], topic["parent_refs"]) == (
            "deck",
            0.9,
            [{"type": "topic", "text": "sales"}],
        )
        [follow_up] = db.rows("follow_ups")
        assert (follow_up["assignee_name"], follow_up["definitive"], follow_up["due_by"]) == (
            "Alice",
            None,
            None,
        )
        assert column(db.rows("members"), "email") == ["alice@example.com", "bob@example.com"]

    def test_registered_through_the_entry_point(self) -> None:
        """The core finds the sink type "database" like any third-party plugin's."""
        plugins = load_plugins()
        assert plugins.sinks.get("database", key_path="sinks[1].type") is make_database_sink
        [row] = [p for p in plugins.info if p.name == "database"]
        assert (row.source, row.status) == ("entry point", "loaded")

    def test_is_a_sink_and_runs_off_the_event_loop(self, db: Database) -> None:
        """The sink satisfies the protocol and does its database work in a worker thread."""
        sink = db.sink()
        assert isinstance(sink, Sink)
        threads: list[threading.Thread] = []
        write = sink.write

        def spy(res: Any) -> Any:
            threads.append(threading.current_thread())
            return write(res)

        sink.write = spy  # type: ignore[method-assign]
        deliver(sink)
        assert threads and threads[0] is not threading.main_thread()


class TestRedelivery:
    def test_after_an_append_leaves_exactly_one_copy_of_each_item(self, db: Database) -> None:
        """New messages are added, dropped insights removed, the conversation updated."""
        sink = db.sink()
        deliver(sink)
        [before] = db.rows("conversations")
        detail = deliver(sink, appended(), parts=2)
        assert (detail["changed"], detail["messages"], detail["removed"]) == (True, 4, 1)
        messages = db.rows("messages")
        assert column(messages, "id") == ["m1", "m2", "m3", "m4"]
        assert column(messages, "raw") == MESSAGES + APPENDED
        assert column(db.rows("topics"), "id") == ["t2"]
        [action] = db.rows("action_items")
        assert (action["assignee_name"], action["assignee_email"]) == ("Carol", None)
        assert column(db.rows("members"), "name") == ["Alice", "Bob", "Carol"]
        assert column(db.rows("parts"), "relpath") == ["part0.wav", "part1.wav"]
        [after] = db.rows("conversations")
        assert after["parts"] == 2
        assert after["created_at"] == before["created_at"]
        assert after["updated_at"] > before["updated_at"]
        assert after["content_sha256"] != before["content_sha256"]

    def test_identical_content_changes_nothing(self, db: Database) -> None:
        """Redelivering the same result writes nothing, not even ``updated_at``."""
        sink = db.sink()
        deliver(sink, appended(), parts=2)
        before = db.snapshot()
        detail = deliver(sink, appended(), parts=2)
        assert detail["changed"] is False
        assert detail["messages"] == 4
        assert db.snapshot() == before

    def test_fewer_items_remove_the_rest(self, db: Database) -> None:
        """A redelivery with fewer items (or none of a kind) deletes the ones not sent."""
        sink = db.sink()
        deliver(sink, appended(), parts=2)
        detail = deliver(sink, replace(insights(messages=MESSAGES[:1]), topics=[]))
        assert detail["removed"] == 3 + 1 + 1 + 1  # messages, topic, member, part
        assert column(db.rows("messages"), "id") == ["m1"]
        assert db.rows("topics") == []
        assert len(db.rows("parts")) == 1

    def test_two_conversations_do_not_interfere(self, db: Database) -> None:
        """Items with the same ids in two conversations are separate rows, and redelivering
        one conversation leaves the other exactly as it was."""
        sink = db.sink()
        deliver(sink, appended(OTHER_CID), name="Other")
        other = db.snapshot()
        deliver(sink)
        deliver(sink, insights(messages=MESSAGES[:1]))
        both = db.snapshot()
        assert column(both["conversations"], "id") == sorted([CID, OTHER_CID])
        for kind, rows in both.items():
            key = "id" if kind == "conversations" else "conversation_id"
            assert [row for row in rows if row[key] == OTHER_CID] == other[kind], kind
        pairs = [(row["conversation_id"], row["id"]) for row in db.rows("messages")]
        assert sorted(pairs) == sorted([(CID, "m1")] + [(OTHER_CID, f"m{n}") for n in (1, 2, 3, 4)])


class TestInterruption:
    def test_failure_mid_transaction_keeps_the_previous_state_and_a_retry_completes(
        self, db: Database, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The connection dies after some tables were written: nothing of the new delivery
        is visible, the error is Retryable, and delivering again completes it."""
        sink = db.sink()
        deliver(sink)
        before = db.snapshot()
        real_upsert = sink_module.upsert
        calls: list[str] = []

        def dying_upsert(connection: Any, table: Any, rows: Any, **kwargs: Any) -> None:
            real_upsert(connection, table, rows, **kwargs)
            calls.append(table.name)
            if len(calls) == 4:  # conversation, parts, messages, topics written
                raise OperationalError("INSERT …", {}, ConnectionResetError("server went away"))

        monkeypatch.setattr(sink_module, "upsert", dying_upsert)
        with pytest.raises(Retryable, match="server went away; will retry"):
            deliver(sink, appended(), parts=2)
        assert calls[-1].endswith("topics")
        assert db.snapshot() == before
        monkeypatch.setattr(sink_module, "upsert", real_upsert)
        detail = deliver(sink, appended(), parts=2)
        assert detail["changed"] is True
        assert column(db.rows("messages"), "id") == ["m1", "m2", "m3", "m4"]
        assert column(db.rows("topics"), "id") == ["t2"]

    def test_interrupted_first_delivery_leaves_no_trace(
        self, db: Database, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A first delivery that fails half-way leaves no conversation row behind, so the
        retry is not mistaken for an identical redelivery."""
        sink = db.sink()
        real_replace = sink_module.replace_children

        def failing(connection: Any, table: Any, *args: Any) -> int:
            if table.name.endswith("questions"):
                raise OperationalError("DELETE …", {}, TimeoutError("timed out"))
            return real_replace(connection, table, *args)

        monkeypatch.setattr(sink_module, "replace_children", failing)
        with pytest.raises(Retryable):
            deliver(sink)
        assert db.rows("conversations") == []
        assert db.rows("messages") == []
        monkeypatch.setattr(sink_module, "replace_children", real_replace)
        assert deliver(sink)["changed"] is True
        assert len(db.rows("questions")) == 1

    def test_concurrent_deliveries_of_one_conversation_leave_one_whole_version(
        self, db: Database
    ) -> None:
        """Two daemons delivering different versions at once end with one of them, whole."""
        sinks = [db.sink("a"), db.sink("b")]
        versions = [result(), result(appended(), parts=2)]
        asyncio.run(sinks[0].deliver(versions[0]))  # tables exist before the race

        async def race() -> None:
            for _ in range(3):
                await asyncio.gather(*(s.deliver(v) for s, v in zip(sinks, versions, strict=True)))

        asyncio.run(race())
        ids = column(db.rows("messages"), "id")
        assert ids in (["m1", "m2"], ["m1", "m2", "m3", "m4"])
        [conversation] = db.rows("conversations")
        assert conversation["parts"] == (1 if len(ids) == 2 else 2)
        assert len(db.rows("parts")) == conversation["parts"]


HOSTILE = (
    "Robert'); DROP TABLE messages;--",
    'say "hello" \\ back\\slash %s %(x)s ? :name',
    "日本語のテキスト 🎉 עברית \u202eevil\u202c",
    "line\nbreak\r\n\ttab",
    "nul\x00byte",
    "lone \ud800 surrogate",
    "x" * 20_000,
)
STORED = (*HOSTILE[:4], "nulbyte", "lone \ufffd surrogate", "x" * 20_000)


class TestHostileText:
    def test_text_is_stored_faithfully_except_nul_and_lone_surrogates(self, db: Database) -> None:
        """Quotes, placeholders, unicode and long text round-trip exactly; U+0000 is removed
        and a lone surrogate becomes U+FFFD, on every dialect alike."""
        messages = [message(i + 1, text, 'O\'Brien "Ø"', i, 1.0) for i, text in enumerate(HOSTILE)]
        messages.append({**message(99, "id with quotes", "Zoë", 50.0, 1.0), "id": 'it\'s "m"\x00'})
        name = "Weekly \x00sync 'quoted' 🎉"
        deliver(db.sink(), insights(messages=messages), name=name)
        rows = db.rows("messages")
        by_position = sorted(rows, key=lambda row: row["position"])
        assert column(by_position, "text") == [*STORED, "id with quotes"]
        assert by_position[-1]["id"] == 'it\'s "m"'
        assert {row["speaker_name"] for row in rows} == {'O\'Brien "Ø"', "Zoë"}
        assert by_position[4]["raw"]["text"] == "nulbyte"
        assert db.rows("conversations")[0]["name"] == "Weekly sync 'quoted' 🎉"
