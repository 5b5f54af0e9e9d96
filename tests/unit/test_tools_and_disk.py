"""Missing tools and a full work directory: clear errors, retried, never a failed file."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import re
import sys
import threading
import time
from pathlib import Path

import pytest

from ingestd import executables
from ingestd.config import PipelineConfig
from ingestd.errors import DiskFull, Retryable
from ingestd.lifecycle import State
from ingestd.model import Insights, TranscodePlan
from ingestd.pipeline import (
    DISK_FULL_RECHECK_SECONDS,
    JUST_SAVED_KEPT,
    Pipeline,
    _write_json_atomically,
)
from ingestd.plugins import load_plugins
from ingestd.store import SqliteStore, Store
from ingestd.testing import bare_config
from ingestd.transcode import run_plan
from ingestd_ffmpeg.runner import run_ffprobe


def plan(*argv: str) -> TranscodePlan:
    return TranscodePlan(
        argv=(*argv, "{input}", "{output}"),
        suffix=".wav",
        description="test plan",
        reencodes=True,
        timeout_seconds=30,
    )


class TestMissingTools:
    def test_missing_transcoder_names_the_tool_and_is_retried(self, tmp_path: Path) -> None:
        """ENOENT from exec becomes a Retryable naming ffmpeg and how to point at it."""
        missing = str(tmp_path / "no-such-dir" / "ffmpeg")
        with pytest.raises(Retryable) as caught:
            asyncio.run(run_plan(plan(missing), tmp_path / "in.flac", tmp_path / "w" / "1.wav"))
        message = str(caught.value)
        assert "cannot run ffmpeg" in message and missing in message
        assert "INGESTD_FFMPEG" in message
        assert "No such file or directory" in message

    def test_missing_ffprobe_names_the_tool(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The probe's ffprobe missing: the same clear, retried error."""
        missing = str(tmp_path / "ffprobe")
        monkeypatch.setattr(executables, "ffprobe", lambda: missing)
        with pytest.raises(Retryable, match=r"cannot run ffprobe .*INGESTD_FFPROBE"):
            run_ffprobe(["-show_format"], tmp_path / "a.wav", "a.wav")

    def test_a_third_party_tool_is_not_given_an_ingestd_variable(self) -> None:
        """Only ffmpeg and ffprobe have INGESTD_* overrides; others are found on PATH."""
        error = executables.cannot_run("/opt/x/sox", PermissionError(errno.EACCES, "denied"))
        assert "cannot run sox" in str(error) and "PATH" in str(error)
        assert "INGESTD_" not in str(error)


class TestWorkDirectoryFull:
    def test_no_space_reported_with_exit_status_zero_is_disk_full(self, tmp_path: Path) -> None:
        """ffmpeg 6 exits 0 when only its trailer failed; the empty output must not pass."""
        code = (
            "import sys; open(sys.argv[2], 'wb').close();"
            "sys.stderr.write('Error writing trailer: No space left on device\\n')"
        )
        target = tmp_path / "w" / "2.wav"
        with pytest.raises(DiskFull, match="disk full in the work directory"):
            asyncio.run(run_plan(plan(sys.executable, "-c", code), tmp_path / "in", target))
        assert list(target.parent.iterdir()) == []

    def test_insights_on_a_full_disk_leave_no_temporary_file(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """ENOSPC while saving insights: DiskFull naming the folder; no half file left."""

        def no_space(fd: int) -> None:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        monkeypatch.setattr(os, "fsync", no_space)
        target = tmp_path / "insights" / "c1.json"
        with pytest.raises(DiskFull, match=re.escape(str(target.parent))):
            _write_json_atomically(target, {"messages": []})
        assert list(target.parent.iterdir()) == []

    def test_two_writers_of_one_conversations_insights_never_collide(self, tmp_path: Path) -> None:
        """Two parts of one conversation fetched at once save the same file: each write
        lands whole, neither fails (they shared one temporary name before)."""
        target = tmp_path / "insights" / "c1.json"
        failures: list[BaseException] = []

        def write(n: int) -> None:
            try:
                for i in range(150):
                    _write_json_atomically(target, {"writer": n, "i": i})
            except BaseException as exc:  # reported below
                failures.append(exc)

        threads = [threading.Thread(target=write, args=(n,)) for n in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert failures == []
        assert json.loads(target.read_text())["i"] == 149
        assert [p.name for p in target.parent.iterdir()] == ["c1.json"]


class TestRetryPolicy:
    def pipeline(self, tmp_path: Path) -> tuple[Pipeline, Store, int]:
        store = SqliteStore(tmp_path / "state.db")
        row = store.insert(
            watch="w", watch_root="/in", relpath="a.wav", size_bytes=1, mtime=1.0, sha256="a"
        )
        store.transition(row.id, State.PROBED)
        config = bare_config(tmp_path, PipelineConfig(max_attempts=2, retry_max_seconds=600.0))
        plugins = load_plugins(entry_points_enabled=False)
        pipeline = Pipeline(config, store, plugins, backend=None, sinks={})  # type: ignore[arg-type]
        return pipeline, store, row.id

    def test_disk_full_waits_without_using_up_attempts(self, tmp_path: Path) -> None:
        """A full work directory is not the file's fault: it never fails the recording, and
        it is looked at again at least every DISK_FULL_RECHECK_SECONDS."""
        pipeline, store, row_id = self.pipeline(tmp_path)
        for _ in range(6):
            pipeline._retry_later(store.get(row_id), DiskFull("disk full in the work directory"))
        row = store.get(row_id)
        assert row.state is State.PROBED and row.attempts == 6
        assert "disk full" in (row.error or "")
        assert row.next_attempt_at <= time.time() + DISK_FULL_RECHECK_SECONDS

    def test_other_transient_errors_still_give_up(self, tmp_path: Path) -> None:
        """The attempt limit stays for everything else."""
        pipeline, store, row_id = self.pipeline(tmp_path)
        for _ in range(2):
            pipeline._retry_later(store.get(row_id), Retryable("HTTP 503"))
        assert store.get(row_id).state is State.FAILED


class TestInsightsHandedToTheDelivery:
    """The delivery right after a fetch takes the insights the fetch saved from memory; any
    other reads them from the file (what is on disk is the same: this process wrote it)."""

    def test_taken_once_from_memory_then_from_the_file(self, tmp_path: Path) -> None:
        pipeline, store, row_id = TestRetryPolicy().pipeline(tmp_path)
        path = tmp_path / "work" / "insights" / "c1.json"
        saved = Insights("c1", messages=[{"text": "hello"}])
        asyncio.run(pipeline._save_insights(path, saved))
        assert json.loads(path.read_text())["messages"] == [{"text": "hello"}]
        row = store.update(row_id, conversation_id="c1", insights_path=str(path))

        assert asyncio.run(pipeline._insights_here(row)) is saved
        again = asyncio.run(pipeline._insights_here(row))
        assert again is not saved and again == saved  # read back from the file

    def test_only_a_few_are_kept(self, tmp_path: Path) -> None:
        """Insights whose delivery another node took on do not pile up in memory."""
        pipeline, _, _ = TestRetryPolicy().pipeline(tmp_path)
        for i in range(JUST_SAVED_KEPT + 5):
            path = tmp_path / "work" / "insights" / f"c{i}.json"
            asyncio.run(pipeline._save_insights(path, Insights(f"c{i}")))
        assert len(pipeline._just_saved) == JUST_SAVED_KEPT
        assert str(tmp_path / "work" / "insights" / "c0.json") not in pipeline._just_saved
