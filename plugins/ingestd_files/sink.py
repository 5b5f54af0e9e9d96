"""The files sink: each conversation's results as files in a folder of its own.

Layout, under the sink's ``path``, with the directory from its ``template``::

    <path>/<template, e.g. "{name}-{conversation_id}">/
        insights.json     json      everything fetched, plus an "ingestd" block (source files)
        transcript.md     markdown  report: facts, summary, transcript, topics, questions, ...
        transcript.srt    srt       SubRip subtitles
        transcript.vtt    vtt       WebVTT subtitles
        transcript.txt    txt       plain transcript, one line per message

Every file is replaced atomically (temp file in the same folder, fsync, ``os.replace``,
fsync of the folder), so a reader or a crash sees the old content or the new, never half of
either. Redelivering a conversation (after an append, or a crash mid-delivery) overwrites
the same files; temp files a crash left behind are removed on the next delivery there.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import os
import tempfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ingestd import DeliveryReceipt, Permanent, Result, Retryable, SinkContext
from ingestd_files.options import FilesOptions
from ingestd_files.paths import output_dir, template_fields
from ingestd_files.render import RENDERERS, to_json

FILENAMES = {
    "json": "insights.json",
    "markdown": "transcript.md",
    "srt": "transcript.srt",
    "vtt": "transcript.vtt",
    "txt": "transcript.txt",
}
"""Format -> file name inside the conversation's folder."""

TEMP_SUFFIX = ".ingestd-tmp"
"""Temp files are ``.<file name>.<random><TEMP_SUFFIX>``: hidden, and recognisably ours."""

# Deliveries into one folder are serialised (striped locks: bounded memory), so any temp
# file found while holding the folder's lock was left by a crash, never by a live writer.
_LOCKS = tuple(threading.Lock() for _ in range(64))


def make_files_sink(options: Mapping[str, Any], context: SinkContext) -> FilesSink:
    """The ``files`` sink factory; relative paths are relative to the config file's folder."""
    base = context.config_path.parent if context.config_path else None
    parsed = FilesOptions.parse(options, key_path=context.key_path, base=base)
    return FilesSink(context.name, parsed)


class FilesSink:
    """Writes the configured formats of each conversation into its own folder."""

    def __init__(self, name: str, options: FilesOptions) -> None:
        self.name = name
        self.options = options

    async def deliver(self, result: Result) -> DeliveryReceipt:
        """Write every format; disk trouble (full, permissions) raises `Retryable`."""
        return await asyncio.to_thread(self.write, result, datetime.now(UTC))

    async def aclose(self) -> None:
        """Nothing is held open between deliveries."""

    async def check(self) -> str:
        """``ingestd check``: the results folder can be written (or created)."""
        return await asyncio.to_thread(writable, Path(self.options.path))

    def write(self, result: Result, generated_at: datetime) -> DeliveryReceipt:
        """The blocking part of `deliver`: render everything first, then replace the files."""
        contents = {
            FILENAMES[fmt]: (
                to_json(result, generated_at=generated_at)
                if fmt == "json"
                else RENDERERS[fmt](result)
            ).encode("utf-8", errors="replace")  # a lone surrogate from the API becomes "?"
            for fmt in self.options.formats
        }
        directory = output_dir(self.options.path, self.options.template, template_fields(result))
        with _LOCKS[hash(directory) % len(_LOCKS)]:
            make_dirs(directory)
            remove_stale_temp_files(directory)
            paths = []
            for filename, data in contents.items():
                write_atomic(directory / filename, data)
                paths.append(str(directory / filename))
            with _disk_trouble("sync the folder", directory):
                fsync_dir(directory)
        return DeliveryReceipt(sink=self.name, detail={"paths": paths})


@contextmanager
def _disk_trouble(doing: str, path: Path) -> Iterator[None]:
    """Turn an OSError into `Retryable` naming the path: the core retries with back-off, and
    the message tells the operator what to free or fix meanwhile."""
    try:
        yield
    except OSError as exc:
        code = f" ({errno.errorcode[exc.errno]})" if exc.errno in errno.errorcode else ""
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise Retryable(f"files sink cannot {doing} {path}: {reason}{code}; will retry") from exc


def make_dirs(directory: Path) -> None:
    """Create `directory` and any missing parents, syncing each new entry into its parent."""
    missing = []
    level = directory
    with _disk_trouble("look up the folder", directory):
        while not level.exists():
            missing.append(level)
            level = level.parent
    for level in reversed(missing):
        with _disk_trouble("create the folder", level):
            with suppress(FileExistsError):  # another process got there first
                level.mkdir()
            fsync_dir(level.parent)


def remove_stale_temp_files(directory: Path) -> None:
    """Delete temp files of ours left in `directory` by an interrupted delivery."""
    prefixes = tuple(f".{name}." for name in FILENAMES.values())
    with _disk_trouble("list the folder", directory), os.scandir(directory) as entries:
        stale = [
            Path(entry.path)
            for entry in entries
            if entry.name.startswith(prefixes)
            and entry.name.endswith(TEMP_SUFFIX)
            and entry.is_file(follow_symlinks=False)
        ]
    for path in stale:
        with _disk_trouble("remove the stale temp file", path), suppress(FileNotFoundError):
            path.unlink()


def write_atomic(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so that no reader or crash ever sees a partial file.

    The temp file is removed on any failure; ``os.replace`` leaves the old file intact
    until the moment it is swapped (and replaces a symlink rather than following it).
    """
    with _disk_trouble("write", path):
        fd, temp_name = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent
        )
        temp = Path(temp_name)
        try:
            with os.fdopen(fd, "wb") as handle:
                os.fchmod(handle.fileno(), _file_mode(path))
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, path)
        except BaseException:
            with suppress(OSError):
                temp.unlink()
            raise


def fsync_dir(directory: Path) -> None:
    """Make renames and new entries in `directory` durable (a no-op where unsupported)."""
    if os.name == "nt":
        return
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP):  # some file systems cannot
            raise
    finally:
        os.close(fd)


def _file_mode(path: Path) -> int:
    """Keep the permissions of the file being replaced; new files follow the umask."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        return 0o666 & ~_umask()


@functools.cache
def _umask() -> int:
    """The process umask, read without changing it (``os.umask`` would race other threads)."""
    with suppress(OSError, ValueError), open("/proc/self/status") as status:
        for line in status:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    return 0o022


def writable(folder: Path) -> str:
    """What `check` says of `folder`; `Permanent` naming why nothing can be written there."""
    if folder.is_dir():
        try:
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as exc:
            raise Permanent(f"{folder}: cannot write there ({exc.strerror})") from None
        return f"{folder}: writable"
    if folder.exists():
        raise Permanent(f"{folder}: is not a folder")
    parent = folder.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not os.access(parent, os.W_OK | os.X_OK):
        raise Permanent(f"{folder}: does not exist, and {parent} does not let us create it")
    return f"{folder}: will be created at the first delivery"
