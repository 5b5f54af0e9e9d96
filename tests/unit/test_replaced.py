"""A recording whose file now holds other content is dismissed, never processed with it."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from ingestd import replaced
from ingestd.intake import sha256_file
from ingestd.lifecycle import State
from ingestd.pipeline import Pipeline
from ingestd.plugins import load_plugins
from ingestd.replaced import FileNow
from ingestd.store import RecordingRow, SqliteStore, Store
from ingestd.testing import bare_config


def record(store: Store, path: Path) -> RecordingRow:
    """Record `path` as intake does: size, mtime and full hash of what it holds now."""
    stat = path.stat()
    return store.insert(
        watch="w",
        watch_root=str(path.parent),
        relpath=path.name,
        size_bytes=stat.st_size,
        mtime=stat.st_mtime,
        sha256=sha256_file(path),
    )


def pipeline(tmp_path: Path, store: Store) -> Pipeline:
    config = bare_config(tmp_path)
    plugins = load_plugins(entry_points_enabled=False)
    return Pipeline(config, store, plugins, backend=None, sinks={})  # type: ignore[arg-type]


class TestCompare:
    def test_same_content_touched_is_the_same_recording(self, tmp_path: Path) -> None:
        """A new mtime alone is not new content: the hash decides."""
        store = SqliteStore(tmp_path / "state.db")
        path = tmp_path / "a.wav"
        path.write_bytes(b"A" * 100)
        row = record(store, path)
        os.utime(path, (1e9, 1e9))
        assert replaced.compare(row).now is FileNow.SAME

    def test_other_content_of_the_same_size(self, tmp_path: Path) -> None:
        """Same size, other bytes, new mtime: changed."""
        store = SqliteStore(tmp_path / "state.db")
        path = tmp_path / "a.wav"
        path.write_bytes(b"A" * 100)
        row = record(store, path)
        path.write_bytes(b"B" * 100)
        os.utime(path, (1e9, 1e9))
        verdict = replaced.compare(row)
        assert (verdict.now, verdict.sha256) == (FileNow.CHANGED, sha256_file(path))

    def test_gone(self, tmp_path: Path) -> None:
        store = SqliteStore(tmp_path / "state.db")
        path = tmp_path / "a.wav"
        path.write_bytes(b"A")
        row = record(store, path)
        path.unlink()
        assert replaced.compare(row).now is FileNow.GONE


class TestReadsSource:
    def test_which_steps_read_the_original_file(self, tmp_path: Path) -> None:
        """Probe, transcode and an upload as is read it; a transcoded copy or a job does not."""
        store = SqliteStore(tmp_path / "state.db")
        path = tmp_path / "a.wav"
        path.write_bytes(b"A")
        row = record(store, path)
        assert replaced.reads_source(row)  # discovered
        row = store.transition(row.id, State.PROBED)
        row = store.transition(row.id, State.TRANSCODED, upload_path=str(path))
        assert replaced.reads_source(row)  # uploads the original as is
        row = store.update(row.id, upload_path=str(tmp_path / "work" / "1.wav"))
        assert not replaced.reads_source(row)
        row = store.transition(row.id, State.QUEUED)
        row = store.transition(row.id, State.SUBMITTING)
        row = store.transition(row.id, State.FAILED, failed_from="submitting")
        assert not replaced.reads_source(row)


class TestPipelineGuard:
    def test_replaced_before_its_probe_is_dismissed(self, tmp_path: Path) -> None:
        """A discovered recording whose file was overwritten is dismissed, naming the new
        content's recording, instead of probing (and uploading) it under the old hash."""
        store = SqliteStore(tmp_path / "state.db")
        path = tmp_path / "call.wav"
        path.write_bytes(b"old content")
        old = record(store, path)
        path.write_bytes(b"new and longer content")
        new = record(store, path)  # what intake does when it sees the replacement
        after = asyncio.run(pipeline(tmp_path, store).run_stage(old))
        assert after.state is State.DISMISSED
        assert (
            after.error
            == f"call.wav was replaced after it was recorded; its new content is #{new.id}"
        )
        assert store.get(new.id).state is State.DISCOVERED

    def test_dismissed_content_is_no_original(self, tmp_path: Path) -> None:
        """Content that was dismissed unprocessed does not make a later copy a duplicate."""
        store = SqliteStore(tmp_path / "state.db")
        path = tmp_path / "a.wav"
        path.write_bytes(b"A" * 10)
        row = record(store, path)
        assert store.original_of(row.size_bytes, row.sha256) == row
        store.transition(row.id, State.DISMISSED)
        assert store.original_of(row.size_bytes, row.sha256) is None


class TestUnmountedShare:
    def test_a_missing_watch_folder_is_not_a_deleted_file(self, tmp_path: Path) -> None:
        """Every file of an unmounted share is missing: nothing is called deleted."""
        store = SqliteStore(tmp_path / "state.db")
        share = tmp_path / "share"
        share.mkdir()
        path = share / "a.wav"
        path.write_bytes(b"A")
        row = record(store, path)
        path.unlink()
        share.rmdir()
        assert replaced.compare(row).now is FileNow.UNREADABLE


class TestBeforeTheUpload:
    def test_replaced_while_submitting_goes_back_and_is_dismissed(self, tmp_path: Path) -> None:
        """A file uploaded as is, replaced before its upload: the upload is not made (the
        backend is never called); the row leaves through the queue, dismissed."""
        store = SqliteStore(tmp_path / "state.db")
        path = tmp_path / "call.wav"
        path.write_bytes(b"old content")
        row = record(store, path)
        for state in (State.PROBED, State.TRANSCODED, State.QUEUED, State.SUBMITTING):
            columns = {"upload_path": str(path)} if state is State.TRANSCODED else {}
            row = store.transition(row.id, state, **columns)
        path.write_bytes(b"new and longer content")
        stages = pipeline(tmp_path, store)  # backend=None: any upload would crash the stage
        row = asyncio.run(stages.run_stage(row))
        assert row.state is State.DISMISSED
        moves = [(e["old"], e["new"]) for e in store.events(row.id)][-2:]
        assert moves == [("submitting", "queued"), ("queued", "dismissed")]
        assert "was replaced after it was recorded" in (row.error or "")
