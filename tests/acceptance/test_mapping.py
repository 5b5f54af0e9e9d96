"""Conversation mapping end to end: every strategy with the real daemon and the sandbox, and
a restart of the daemon between the parts of a conversation."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from ingestd.testing import IngestdEnv, copy_slowly, drop
from ingestd.testing import sha256_of as sha256

MINUTE = 60.0


def created(sandbox: Any) -> dict[str, dict[str, Any]]:
    """Created submissions keyed by the sha256 of their bytes."""
    return {s["sha256"]: s for s in sandbox.submissions() if s["outcome"] == "created"}


def restart(env: IngestdEnv, daemon: Any) -> Any:
    """Stop the daemon cleanly and start a new one on the same state."""
    assert daemon.stop() == 0
    again = env.daemon().start()
    again.wait_ready()
    return again


def first(env: IngestdEnv, **watch: Any) -> Any:
    daemon = env.daemon(watch={"patterns": ["*.wav"], **watch}).start()
    daemon.wait_ready()
    return daemon


def staged(make_media: Any, name: str, mtime: float | None = None) -> tuple[Path, str]:
    """A one-second wav in staging (with the given mtime), and its hash."""
    path = make_media(name, seconds=1)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path, sha256(path)


class TestFolder:
    def test_sub_folder_parts_append_across_a_restart(
        self, ingestd_env, sandbox, make_media
    ) -> None:
        """Part 2 of a sub-folder dropped after a restart is PUT into part 1's conversation."""
        daemon = first(ingestd_env, conversation={"by": "folder"})
        part1, h1 = staged(make_media, "part1.wav")
        loose, h_loose = staged(make_media, "loose.wav")
        drop(part1, ingestd_env.inbox / "meeting-42")
        drop(loose, ingestd_env.inbox)
        ingestd_env.wait_states({"meeting-42/part1.wav": "done", "loose.wav": "done"})
        daemon = restart(ingestd_env, daemon)
        part2, h2 = staged(make_media, "part2.wav")
        drop(part2, ingestd_env.inbox / "meeting-42")
        ingestd_env.wait_states({"meeting-42/part2.wav": "done"})
        daemon.stop()

        subs = created(sandbox)
        assert (subs[h1]["method"], subs[h2]["method"]) == ("POST", "PUT")
        assert subs[h2]["conversationId"] == subs[h1]["conversationId"]
        assert subs[h_loose]["method"] == "POST", "a file in the watch's own folder is its own"
        assert subs[h_loose]["conversationId"] != subs[h1]["conversationId"]


class TestAppendOrder:
    """A later part that is quick to record waits for an earlier part that is not yet."""

    @staticmethod
    def assert_appended_in_order(sandbox: Any, hashes: list[str]) -> None:
        subs = created(sandbox)
        parts = [subs[h] for h in hashes]
        assert [s["method"] for s in parts] == ["POST"] + ["PUT"] * (len(parts) - 1)
        assert len({s["conversationId"] for s in parts}) == 1
        in_order = sorted(parts, key=lambda s: s["seq"])
        assert [s["sha256"] for s in in_order] == hashes, "appended out of order"

    def test_part_still_being_copied_is_posted_before_a_later_part(
        self, ingestd_env, sandbox, make_media
    ) -> None:
        """Part 2 lands whole while part 1 is still being copied: part 1 is still the POST."""
        folder = ingestd_env.inbox / "meeting-5"
        folder.mkdir()
        # polled every 0.2 s: both files are noticed while part 1 is still being copied
        daemon = first(
            ingestd_env, conversation={"by": "folder"}, polling=True, poll_interval_seconds=0.2
        )
        part1, h1 = staged(make_media, "part1.wav")
        part2, h2 = staged(make_media, "part2.wav")
        # quiet gaps of 0.1 s, well inside the 0.5 s settle window: part 1 stays unsettled
        copier = threading.Thread(target=copy_slowly, args=(part1, folder / part1.name, 4.0, 40))
        copier.start()
        drop(part2, folder)
        copier.join()
        ingestd_env.wait_states({"meeting-5/part1.wav": "done", "meeting-5/part2.wav": "done"})
        daemon.stop()

        self.assert_appended_in_order(sandbox, [h1, h2])

    def test_only_later_parts_wait_and_only_while_the_earlier_file_exists(
        self, ingestd_env, sandbox, make_media
    ) -> None:
        """While part 1 is being written, part 2 waits but a loose file (no conversation key)
        does not; part 1 deleted half-written, part 2 is sent after all, as the first part."""
        folder = ingestd_env.inbox / "meeting-8"
        folder.mkdir()
        daemon = first(
            ingestd_env, conversation={"by": "folder"}, polling=True, poll_interval_seconds=0.2
        )
        source, _ = staged(make_media, "part1.wav")
        part2, h2 = staged(make_media, "part2.wav")
        loose, h_loose = staged(make_media, "notes.wav")  # sorts after meeting-8/part1.wav
        deadline = time.monotonic() + 60
        with open(folder / "part1.wav", "wb") as growing:
            growing.write(source.read_bytes()[:4096])
            growing.flush()
            drop(part2, folder)
            drop(loose, ingestd_env.inbox)
            while ingestd_env.states().get("notes.wav") != "done":
                assert time.monotonic() < deadline, "the loose file was held back"
                growing.write(b"\0" * 64)  # never quiet for the 0.5 s settle window
                growing.flush()
                time.sleep(0.1)
            sent_meanwhile = {s["sha256"] for s in sandbox.submissions()}
        (folder / "part1.wav").unlink()
        ingestd_env.wait_states({"meeting-8/part2.wav": "done"})
        daemon.stop()

        assert h2 not in sent_meanwhile, "part 2 was sent while part 1 was being written"
        subs = created(sandbox)
        assert subs[h2]["method"] == "POST"
        assert subs[h_loose]["method"] == "POST"

    def test_startup_rescan_posts_a_large_first_part_before_a_small_later_one(
        self, ingestd_env, sandbox, make_media
    ) -> None:
        """Both parts are there when the daemon starts; part 1 takes far longer to hash."""
        part1 = make_media("part1.wav", seconds=2400, sample_rate_hz=48000)  # 230 MB, as is
        h1 = sha256(part1)
        part2, h2 = staged(make_media, "part2.wav")
        folder = ingestd_env.inbox / "meeting-6"
        drop(part1, folder)
        drop(part2, folder)
        daemon = first(ingestd_env, conversation={"by": "folder"})
        ingestd_env.wait_states(
            {"meeting-6/part1.wav": "done", "meeting-6/part2.wav": "done"}, timeout=180
        )
        daemon.stop()

        self.assert_appended_in_order(sandbox, [h1, h2])


def write_while(source: Path, target: Path, busy: Any, deadline_s: float = 60) -> Any:
    """Copy `source` to `target` 4 KB every 0.1 s (never quiet for a 0.5 s settle window)
    until `busy()` returns something other than None, then the rest at once; return that.
    Fails if the source runs out first."""
    data = source.read_bytes()
    deadline = time.monotonic() + deadline_s
    with open(target, "wb") as handle:
        for start in range(0, len(data), 4096):
            handle.write(data[start : start + 4096])
            handle.flush()
            outcome = busy()
            if outcome is not None:
                handle.write(data[start + 4096 :])
                return outcome
            assert time.monotonic() < deadline, "gave up waiting while copying"
            time.sleep(0.1)
    raise AssertionError(f"{target.name} was copied completely before the wait was over")


class TestHoldOnlyWhereTheKeyCouldMatch:
    """A file still being written holds only the parts it could share a conversation with."""

    def test_a_growing_file_holds_its_own_folder_but_not_another(
        self, ingestd_env, sandbox, make_media
    ) -> None:
        """Folder a's part 1 grows slowly: folder b's parts (sorting after it) go through
        meanwhile; a's part 2 waits, and is appended after part 1 once that is complete."""
        daemon = first(
            ingestd_env, conversation={"by": "folder"}, polling=True, poll_interval_seconds=0.2
        )
        a, b = ingestd_env.inbox / "a", ingestd_env.inbox / "b"
        a.mkdir()
        a1 = make_media("a-part1.wav", seconds=60)  # 48 s of copying at most
        h_a1 = sha256(a1)
        a2, h_a2 = staged(make_media, "a-part2.wav")
        b1, h_b1 = staged(make_media, "b-part1.wav")
        b2, h_b2 = staged(make_media, "b-part2.wav")
        drop(a2, a, "part2.wav")
        drop(b1, b, "part1.wav")
        drop(b2, b, "part2.wav")

        def b_done() -> set[str] | None:
            states = ingestd_env.states()
            if states.get("b/part1.wav") == states.get("b/part2.wav") == "done":
                return {s["sha256"] for s in sandbox.submissions()}
            return None

        sent_meanwhile = write_while(a1, a / "part1.wav", b_done)
        ingestd_env.wait_states({"a/part1.wav": "done", "a/part2.wav": "done"})
        daemon.stop()

        assert h_a2 not in sent_meanwhile, "a's part 2 went ahead of its growing part 1"
        TestAppendOrder.assert_appended_in_order(sandbox, [h_b1, h_b2])
        TestAppendOrder.assert_appended_in_order(sandbox, [h_a1, h_a2])

    def test_mtime_order_holds_behind_a_copy_that_sets_its_mtime_last(
        self, ingestd_env, sandbox, make_media
    ) -> None:
        """``order: mtime`` and a ``cp -p``-like copy: the file shows "now" while copied and
        gets its older, earlier-sorting mtime only at the end; a later part (older than now,
        newer than the copy's source) waits for it, and is appended after it."""
        daemon = first(
            ingestd_env,
            conversation={"by": "folder", "order": "mtime"},
            polling=True,
            poll_interval_seconds=0.2,
        )
        meeting = ingestd_env.inbox / "meeting"
        meeting.mkdir()
        now = time.time()
        source = make_media("early.wav", seconds=40)
        h_early = sha256(source)
        late, h_late = staged(make_media, "late.wav", now - 10 * MINUTE)
        drop(late, meeting, "a-late.wav")

        pieces_since_queued: list[None] = []

        def late_queued_a_while() -> set[str] | None:
            """Once the later part is queued, ten more pieces (a second): time enough for
            the dispatcher to send it, were it not held."""
            state = ingestd_env.states().get("meeting/a-late.wav")
            if pieces_since_queued or state not in (None, "discovered", "probed", "transcoded"):
                pieces_since_queued.append(None)
            if len(pieces_since_queued) > 10:
                return {s["sha256"] for s in sandbox.submissions()}
            return None

        target = meeting / "b-early.wav"
        sent_meanwhile = write_while(source, target, late_queued_a_while)
        os.utime(target, (now - 20 * MINUTE, now - 20 * MINUTE))  # as cp -p does, last
        ingestd_env.wait_states({"meeting/a-late.wav": "done", "meeting/b-early.wav": "done"})
        daemon.stop()

        assert h_late not in sent_meanwhile, "the later part went ahead of the copy"
        TestAppendOrder.assert_appended_in_order(sandbox, [h_early, h_late])


class TestRegex:
    def test_named_group_joins_parts_across_a_restart(
        self, ingestd_env, sandbox, make_media
    ) -> None:
        """Files whose names share the key group form one conversation, even after a restart."""
        daemon = first(
            ingestd_env,
            conversation={"by": "regex", "pattern": r"meeting-(?P<key>\d+)-part\d+"},
        )
        m7p1, h7p1 = staged(make_media, "meeting-7-part1.wav")
        m8p1, h8p1 = staged(make_media, "meeting-8-part1.wav")
        drop(m7p1, ingestd_env.inbox)
        drop(m8p1, ingestd_env.inbox)
        ingestd_env.wait_states({"meeting-7-part1.wav": "done", "meeting-8-part1.wav": "done"})
        daemon = restart(ingestd_env, daemon)
        m7p2, h7p2 = staged(make_media, "meeting-7-part2.wav")
        notes, h_notes = staged(make_media, "notes.wav")
        drop(m7p2, ingestd_env.inbox / "later")  # the name decides, not the folder
        drop(notes, ingestd_env.inbox)
        ingestd_env.wait_states({"later/meeting-7-part2.wav": "done", "notes.wav": "done"})
        daemon.stop()

        subs = created(sandbox)
        assert subs[h7p2]["method"] == "PUT"
        assert subs[h7p2]["conversationId"] == subs[h7p1]["conversationId"]
        assert subs[h8p1]["conversationId"] != subs[h7p1]["conversationId"]
        assert subs[h_notes]["method"] == "POST", "no match: a conversation of its own"


class TestSidecar:
    def test_sidecar_key_and_conversation_id_across_a_restart(
        self, ingestd_env, sandbox, make_media
    ) -> None:
        """Sidecar keys group files after a restart; a conversationId appends to that one."""
        inbox = ingestd_env.inbox
        daemon = first(ingestd_env, conversation={"by": "sidecar"})
        a, h_a = staged(make_media, "a.wav")
        (inbox / "a.ingestd.yaml").write_text("conversation: {key: weekly-sync}\n")
        drop(a, inbox)
        ingestd_env.wait_states({"a.wav": "done"})
        conversation_id = created(sandbox)[h_a]["conversationId"]
        daemon = restart(ingestd_env, daemon)
        b, h_b = staged(make_media, "b.wav")
        c, h_c = staged(make_media, "c.wav")
        plain, h_plain = staged(make_media, "plain.wav")
        (inbox / "b.ingestd.json").write_text('{"conversation": {"key": "weekly-sync"}}')
        (inbox / "c.ingestd.yaml").write_text(
            f'conversation: {{conversationId: "{conversation_id}"}}'
        )
        for path in (b, c, plain):
            drop(path, inbox)
        ingestd_env.wait_states({"b.wav": "done", "c.wav": "done", "plain.wav": "done"})
        daemon.stop()

        subs = created(sandbox)
        for digest in (h_b, h_c):
            assert (subs[digest]["method"], subs[digest]["conversationId"]) == (
                "PUT",
                conversation_id,
            )
        assert subs[h_plain]["method"] == "POST", "without a sidecar: its own conversation"
        part_order = [
            s["sha256"]
            for s in sorted(subs.values(), key=lambda s: s["seq"])
            if s["conversationId"] == conversation_id
        ]
        assert part_order[0] == h_a and set(part_order[1:]) == {h_b, h_c}


class TestTtl:
    def test_time_window_and_mtime_order_across_a_restart(
        self, ingestd_env, sandbox, make_media
    ) -> None:
        """Files within the window of each other share a conversation, appended by mtime."""
        now = time.time()
        daemon = first(
            ingestd_env,
            conversation={"by": "ttl", "window_minutes": 10, "order": "mtime"},
        )
        early, h_early = staged(make_media, "z-early.wav", now - 60 * MINUTE)
        drop(early, ingestd_env.inbox)
        ingestd_env.wait_states({"z-early.wav": "done"})
        daemon = restart(ingestd_env, daemon)
        # named against their mtime order; dropped together, after the restart
        files = {
            "c.wav": now - 52 * MINUTE,  # 8 min after z-early: joins it
            "b.wav": now - 45 * MINUTE,  # 7 min after c: joins too
            "a.wav": now - 20 * MINUTE,  # 25 min after b: a new conversation
        }
        hashes = {}
        for name, mtime in files.items():
            path, hashes[name] = staged(make_media, name, mtime)
            drop(path, ingestd_env.inbox)
        ingestd_env.wait_states({name: "done" for name in files})
        daemon.stop()

        subs = created(sandbox)
        first_conversation = subs[h_early]["conversationId"]
        joined = sorted((subs[hashes[n]] for n in ("c.wav", "b.wav")), key=lambda s: s["seq"])
        assert [s["sha256"] for s in joined] == [hashes["c.wav"], hashes["b.wav"]], "mtime order"
        assert all(s["method"] == "PUT" for s in joined)
        assert {s["conversationId"] for s in joined} == {first_conversation}
        assert subs[hashes["a.wav"]]["method"] == "POST"
        assert subs[hashes["a.wav"]]["conversationId"] != first_conversation


class TestNames:
    def test_a_folder_conversation_is_named_after_its_folder(
        self, ingestd_env, sandbox, make_media
    ) -> None:
        """``meeting-42/part1.wav, part2.wav`` is "meeting-42" at the API, in the results
        folder, the Markdown title and the database sink; a file in the watch's own folder
        keeps its file name, and a sidecar's explicit ``name`` still wins."""
        database = ingestd_env.root / "results.db"
        sinks = [
            {"type": "files", "path": str(ingestd_env.results)},
            {"type": "database", "url": f"sqlite:///{database}"},
        ]
        daemon = ingestd_env.daemon(
            watch={"patterns": ["*.wav"], "conversation": {"by": "folder"}}, sinks=sinks
        ).start()
        daemon.wait_ready()
        part1, h1 = staged(make_media, "part1.wav")
        part2, _ = staged(make_media, "part2.wav")
        loose, h_loose = staged(make_media, "loose.wav")
        named, h_named = staged(make_media, "take1.wav")
        drop(part1, ingestd_env.inbox / "meeting-42")
        drop(part2, ingestd_env.inbox / "meeting-42")
        drop(loose, ingestd_env.inbox)
        (ingestd_env.inbox / "review").mkdir()
        (ingestd_env.inbox / "review" / "take1.ingestd.yaml").write_text(
            "parameters: {name: Design review}\n"
        )
        drop(named, ingestd_env.inbox / "review")
        ingestd_env.wait_states(
            {
                "meeting-42/part1.wav": "done",
                "meeting-42/part2.wav": "done",
                "loose.wav": "done",
                "review/take1.wav": "done",
            }
        )
        daemon.stop()

        names = {
            h: sandbox.conversations()[s["conversationId"]]["name"]
            for h, s in created(sandbox).items()
            if s["method"] == "POST"
        }
        assert names == {h1: "meeting-42", h_loose: "loose", h_named: "Design review"}
        meeting = created(sandbox)[h1]["conversationId"]
        folder = ingestd_env.results / f"meeting-42-{meeting}"
        assert folder.is_dir(), sorted(p.name for p in ingestd_env.results.iterdir())
        markdown = next(folder.glob("*.md")).read_text()
        assert markdown.startswith("# meeting-42\n")
        with sqlite3.connect(database) as conn:
            stored = dict(conn.execute("SELECT id, name FROM conversations"))
        assert stored[meeting] == "meeting-42"
        assert sorted(stored.values()) == ["Design review", "loose", "meeting-42"]
