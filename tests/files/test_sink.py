"""The files sink on a real disk: layout, atomic replacement, redelivery, disk trouble."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import stat
import tempfile
import threading
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import ingestd_files.sink as sink_module
from ingestd.config import WatchConfig
from ingestd.errors import Retryable
from ingestd.model import Result
from ingestd.plugins import load_plugins
from ingestd.registry import Sink
from ingestd_files.options import FORMATS, FilesOptions
from ingestd_files.render import to_markdown, to_srt, to_txt, to_vtt
from ingestd_files.sink import TEMP_SUFFIX, FilesSink, make_files_sink
from tests.files.fixtures import HOSTILE, insights, message, recording, result

ALL_FILES = ["insights.json", "transcript.md", "transcript.srt", "transcript.txt", "transcript.vtt"]
FOLDER = "Weekly sync-5093288386543616"


def files_sink(
    root: Path, formats: tuple[str, ...] = FORMATS, template: str | None = None
) -> FilesSink:
    options = FilesOptions(path=root, formats=formats)
    return FilesSink("files", replace(options, template=template) if template else options)


def deliver(sink: FilesSink, res: Result) -> list[str]:
    return asyncio.run(sink.deliver(res)).detail["paths"]


def listing(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


class TestDelivery:
    def test_writes_every_format_into_the_conversation_folder(self, tmp_path: Path) -> None:
        """Each format lands under its documented name; the receipt lists them in order."""
        root = tmp_path / "missing" / "out"
        receipt = asyncio.run(files_sink(root).deliver(result()))
        folder = root.resolve() / FOLDER
        assert receipt.sink == "files"
        assert receipt.detail == {
            "paths": [
                str(folder / name)
                for name in (
                    "insights.json",
                    "transcript.md",
                    "transcript.srt",
                    "transcript.vtt",
                    "transcript.txt",
                )
            ]
        }
        assert listing(folder) == ALL_FILES
        assert (folder / "transcript.md").read_text() == to_markdown(result())
        assert (folder / "transcript.srt").read_text() == to_srt(result())
        assert (folder / "transcript.vtt").read_text() == to_vtt(result())
        assert (folder / "transcript.txt").read_text() == to_txt(result())
        assert json.loads((folder / "insights.json").read_text())["messages"] == insights().messages

    def test_default_formats_and_template(self, tmp_path: Path) -> None:
        """By default only JSON and Markdown are written."""
        sink = make_files_sink(
            {"path": str(tmp_path)}, sink_module.SinkContext("files", "sinks[0]", None, tmp_path)
        )
        deliver(sink, result())
        assert listing(tmp_path / FOLDER) == ["insights.json", "transcript.md"]

    def test_template_levels(self, tmp_path: Path) -> None:
        """A template with slashes nests folders by watch and date."""
        paths = deliver(files_sink(tmp_path, ("txt",), "{watch}/{date}/{stem}"), result())
        assert paths == [str(tmp_path.resolve() / "w" / "2024-03-05" / "part0" / "transcript.txt")]

    def test_file_io_runs_off_the_event_loop(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Writing happens in a worker thread, never on the loop's thread."""
        threads: list[int] = []
        real = sink_module.write_atomic

        def spy(path: Path, data: bytes) -> None:
            threads.append(threading.get_ident())
            real(path, data)

        monkeypatch.setattr(sink_module, "write_atomic", spy)
        deliver(files_sink(tmp_path), result())
        assert len(threads) == 5 and threading.get_ident() not in threads

    def test_is_a_sink(self, tmp_path: Path) -> None:
        """The sink satisfies the core's protocol and closes without fuss."""
        sink = files_sink(tmp_path)
        assert isinstance(sink, Sink)
        asyncio.run(sink.aclose())

    def test_registered_through_the_entry_point(self) -> None:
        """``files`` is found through the ingestd entry-point group like a third-party sink."""
        plugins = load_plugins()
        assert plugins.sinks.get("files", key_path="sinks[0].type") is make_files_sink
        [row] = [p for p in plugins.info if p.name == "files"]
        assert (row.source, row.status, row.hooks) == (
            "entry point",
            "loaded",
            ["ingestd_register_sinks"],
        )

    def test_new_files_follow_the_umask_and_replacements_keep_their_mode(
        self, tmp_path: Path
    ) -> None:
        """Results are readable like any file the daemon makes, and a chmod survives redelivery."""
        paths = deliver(files_sink(tmp_path, ("txt", "json")), result())
        expected = 0o666 & ~sink_module._umask()
        assert [os.stat(p).st_mode & 0o777 for p in paths] == [expected, expected]
        os.chmod(paths[0], 0o600)
        deliver(files_sink(tmp_path, ("txt", "json")), result())
        assert os.stat(paths[0]).st_mode & 0o777 == 0o600

    def test_durability_order(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Each file is fsynced before its rename, and the folder after the last rename."""
        events: list[str] = []
        real_fsync, real_replace = os.fsync, os.replace

        def fsync(fd: int) -> None:
            events.append("fsync dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync file")
            real_fsync(fd)

        def replace_(src: Any, dst: Any) -> None:
            events.append(f"replace {Path(dst).name}")
            real_replace(src, dst)

        (tmp_path / FOLDER).mkdir()
        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(os, "replace", replace_)
        deliver(files_sink(tmp_path, ("json", "txt")), result())
        assert events == [
            "fsync file",
            "replace insights.json",
            "fsync file",
            "replace transcript.txt",
            "fsync dir",
        ]


class TestRedelivery:
    def test_after_an_append_the_files_hold_the_new_content(self, tmp_path: Path) -> None:
        """Redelivering with more messages overwrites the same files and nothing else."""
        sink = files_sink(tmp_path)
        first = deliver(sink, result())
        grown = insights()
        grown.messages.append(message("And the notes.", "Alice", 7.0, 1.0, 3))
        second = deliver(sink, result(grown, parts=2))
        folder = tmp_path / FOLDER
        assert second == first and listing(folder) == ALL_FILES
        assert (folder / "transcript.txt").read_text().endswith("Alice: And the notes.\n")
        assert len(json.loads((folder / "insights.json").read_text())["ingestd"]["parts"]) == 2

    def test_stale_temp_files_are_cleaned_and_others_kept(self, tmp_path: Path) -> None:
        """Temp files of ours left by a crash go; anyone else's files stay."""
        folder = tmp_path / FOLDER
        folder.mkdir()
        crashed = [f".insights.json.k3j2{TEMP_SUFFIX}", f".transcript.md.zz9{TEMP_SUFFIX}"]
        foreign = [f".notes.txt.x{TEMP_SUFFIX}", "keep.tmp", f"insights.json.x{TEMP_SUFFIX}"]
        for name in crashed + foreign:
            (folder / name).write_text("partial")
        deliver(files_sink(tmp_path, ("json",)), result())
        assert listing(folder) == sorted(["insights.json", *foreign])

    def test_failed_replace_keeps_the_old_file(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """If the swap fails, the previous file is untouched and no temp file lingers."""
        sink = files_sink(tmp_path, ("txt",))
        [path] = deliver(sink, result())
        before = Path(path).read_text()

        def broken_replace(src: Any, dst: Any) -> None:
            raise OSError(errno.EIO, "Input/output error")

        monkeypatch.setattr(os, "replace", broken_replace)
        grown = insights()
        grown.messages.append(message("More.", "Bob", 9.0, 1.0, 3))
        with pytest.raises(Retryable, match=f"cannot write {path}: Input/output error"):
            deliver(sink, result(grown))
        assert Path(path).read_text() == before
        assert listing(tmp_path / FOLDER) == ["transcript.txt"]


class _FullDisk:
    """A file handle whose writes fail as on a full disk."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle

    def __enter__(self) -> _FullDisk:
        return self

    def __exit__(self, *exc: object) -> None:
        self.handle.close()

    def write(self, data: bytes) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.handle, name)


class TestDiskTrouble:
    def test_disk_full_is_retryable_and_names_the_path(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """ENOSPC while writing raises Retryable naming the file; the old file stays intact."""
        sink = files_sink(tmp_path, ("markdown",))
        [path] = deliver(sink, result())
        real_fdopen = os.fdopen
        monkeypatch.setattr(os, "fdopen", lambda fd, *a, **k: _FullDisk(real_fdopen(fd, *a, **k)))
        grown = insights()
        grown.messages.append(message("More.", "Bob", 9.0, 1.0, 3))
        with pytest.raises(Retryable) as caught:
            deliver(sink, result(grown))
        assert str(caught.value) == (
            f"files sink cannot write {path}: No space left on device (ENOSPC); will retry"
        )
        assert Path(path).read_text() == to_markdown(result())
        assert listing(tmp_path / FOLDER) == ["transcript.md"]

    def test_permission_denied_is_retryable(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A folder we may not write to raises Retryable naming the file."""

        def denied(*args: Any, **kwargs: Any) -> Any:
            raise PermissionError(errno.EACCES, "Permission denied")

        monkeypatch.setattr(tempfile, "mkstemp", denied)
        target = tmp_path.resolve() / FOLDER / "transcript.txt"
        with pytest.raises(
            Retryable, match=f"cannot write {target}: Permission denied \\(EACCES\\)"
        ):
            deliver(files_sink(tmp_path, ("txt",)), result())

    def test_unwritable_root_is_retryable(self, tmp_path: Path) -> None:
        """A file where a folder must go is reported with the folder's path."""
        (tmp_path / "root").write_text("not a folder")
        with pytest.raises(Retryable) as caught:
            deliver(files_sink(tmp_path / "root", ("txt",)), result())
        folder = tmp_path.resolve() / "root" / FOLDER
        assert str(caught.value) == (
            f"files sink cannot create the folder {folder}: Not a directory (ENOTDIR); will retry"
        )


class TestHostileNames:
    def test_every_file_lands_inside_the_root(self, tmp_path: Path) -> None:
        """Hostile conversation, watch and file names never write outside the root."""
        root = tmp_path / "out"
        sink = files_sink(root, ("txt", "json"), "{watch}/{name}/{stem}-{conversation_id}")
        written: set[str] = set()
        for i, hostile in enumerate(HOSTILE):
            part = replace(
                recording(f"{hostile}.wav".replace("/", "_").replace("\x00", "")),
                watch=WatchConfig(name=hostile, path=Path("/in")),
            )
            data = replace(insights(), conversation_id=f"{hostile}{i}")
            paths = deliver(
                sink, Result(name=hostile, recording=part, parts=(part,), insights=data)
            )
            written.update(paths)
        on_disk = {str(Path(d) / f) for d, _, files in os.walk(root) for f in files}
        assert on_disk == written and len(written) == 2 * len(HOSTILE)
        assert all(Path(p).resolve().is_relative_to(root.resolve()) for p in written)
        assert listing(tmp_path) == ["out"]


def test_generated_at_is_utc(tmp_path: Path) -> None:
    """The JSON's generation time is the delivery time, in UTC."""
    before = datetime.now(UTC).replace(microsecond=0)
    [path] = deliver(files_sink(tmp_path, ("json",)), result())
    stamp = json.loads(Path(path).read_text())["ingestd"]["generated_at"]
    assert stamp.endswith("Z") and datetime.fromisoformat(stamp) >= before
