"""Does a recording's file still hold the content it was recorded with?

A recording's facts (fingerprint, probe, name) belong to the content that was hashed. A user
told "replace the file to retry" replaces it in place, and a running daemon records the new
content as a recording of its own. Any stage that would read the file again under the old
row (probe, transcode, an upload as is, or `ingestd retry` of a rejected recording) must
first ask this module: when the file changed, the old row is dismissed, never processed with
the new bytes; otherwise the same content is uploaded twice, under the old row's hash.

A cheap check first (size and mtime, as intake records them); the content hash settles it
when they differ, so a touched but unchanged file is still the same recording.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from ingestd.lifecycle import State, is_before_upload
from ingestd.store import RecordingRow, Store

UNREADABLE_FINGERPRINT = "unreadable:"
"""Prefix of the placeholder fingerprint intake stores for a file it could not read."""


class FileNow(StrEnum):
    SAME = "same"  # the content the row was recorded with
    CHANGED = "changed"  # other content: a recording of its own
    GONE = "gone"  # no file at the path any more
    UNREADABLE = "unreadable"  # cannot tell (permission denied, I/O error, no watch folder)


@dataclass(frozen=True)
class Verdict:
    now: FileNow
    size_bytes: int | None = None
    sha256: str | None = None  # of the file as it is now, when it had to be read


def reads_source(row: RecordingRow) -> bool:
    """True when the next step of `row` (or of its retry) reads the original file.

    Probe and transcode read it; an upload reads it when it goes as is. Once the upload
    has started, the row's content is at the API, and the file no longer matters.
    """
    state = row.state
    if state is State.REJECTED:
        return True
    if state is State.FAILED:
        if not row.failed_from:
            return False
        state = State(row.failed_from)
    if not is_before_upload(state):
        return False
    if state in (State.DISCOVERED, State.PROBED):
        return True
    return row.upload_path is None or Path(row.upload_path) == row.path


def by_stat(row: RecordingRow) -> Verdict | None:
    """What one stat of the file tells, or None when its content must be hashed (its mtime
    moved, or it was never hashed). Cheap enough for the event loop, where the pipeline
    asks it first (`compare_soon`): the hand-off to a thread would cost more than the stat."""
    try:
        stat = row.path.stat()
    except FileNotFoundError:
        # An unmounted share loses every file at once: that is no deletion.
        gone = Path(row.watch_root).is_dir()
        return Verdict(FileNow.GONE if gone else FileNow.UNREADABLE)
    except OSError:
        return Verdict(FileNow.UNREADABLE)
    if row.sha256.startswith(UNREADABLE_FINGERPRINT):  # never hashed: stat is all we have
        if (stat.st_size, stat.st_mtime) == (row.size_bytes, row.mtime):
            return None  # the same, as far as anyone can tell; `compare` hashes it now
        return Verdict(FileNow.CHANGED, stat.st_size)
    if stat.st_size != row.size_bytes:
        return Verdict(FileNow.CHANGED, stat.st_size)
    if stat.st_mtime == row.mtime:
        return Verdict(FileNow.SAME, stat.st_size)
    return None


def compare(row: RecordingRow) -> Verdict:
    """The file at `row.path` against the fingerprint `row` was recorded with (blocking)."""
    from ingestd.intake import sha256_file  # intake dismisses through this module

    verdict = by_stat(row)
    if verdict is not None:
        return verdict
    size = row.size_bytes  # `by_stat` found it unchanged
    if row.sha256.startswith(UNREADABLE_FINGERPRINT):
        try:
            digest: str | None = sha256_file(row.path)
        except OSError:
            digest = None
        return Verdict(FileNow.SAME, size, digest)
    try:
        digest = sha256_file(row.path)
    except FileNotFoundError:
        return Verdict(FileNow.GONE)
    except OSError:
        return Verdict(FileNow.UNREADABLE)
    now = FileNow.SAME if digest == row.sha256 else FileNow.CHANGED
    return Verdict(now, size, digest)


async def compare_soon(row: RecordingRow) -> Verdict:
    """`compare` from the event loop: the stat there, the hashing (rare) in a thread."""
    verdict = by_stat(row)
    return verdict if verdict is not None else await asyncio.to_thread(compare, row)


def successor(store: Store, row: RecordingRow, verdict: Verdict) -> RecordingRow | None:
    """The recording of what the file holds now, if intake recorded it already."""
    latest = store.latest_for_path(row.watch, row.relpath)
    if latest is not None and latest.id > row.id:
        return latest
    if verdict.sha256 is not None and verdict.size_bytes is not None:
        found = store.original_of(verdict.size_bytes, verdict.sha256)
        if found is not None and found.id != row.id:
            return found
    return None


def replaced_reason(row: RecordingRow, successor: RecordingRow | None) -> str:
    """Why a row whose file was replaced is dismissed, naming its successor if known."""
    if successor is None:
        return (
            f"{row.relpath} was replaced after it was recorded; its new content is recorded "
            f"as a recording of its own"
        )
    return f"{row.relpath} was replaced after it was recorded; its new content is #{successor.id}"


def gone_reason(row: RecordingRow) -> str:
    return f"{row.relpath} was deleted; nothing is left to process"
