"""Intake: a settled file becomes a stored recording, or is recognised as already known.

Identity is the fingerprint (size + full SHA-256), so a renamed or re-copied file with the
same content is a ``duplicate`` and never sent twice. Hashing runs in a worker thread; if
the file changed while it was hashed, it goes back to settling.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
from collections.abc import Callable
from pathlib import Path

import structlog

from ingestd.config import WatchConfig
from ingestd.conversations import assign_conversation
from ingestd.errors import IngestdError, Rejected
from ingestd.lifecycle import State
from ingestd.plugins import Plugins
from ingestd.store import RecordingRow, Store
from ingestd.watch import relpath

log = structlog.get_logger()

_CHUNK = 1 << 20
_DIGITS = re.compile(r"\d+")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def natural_key(text: str) -> str:
    """Sorts ``part2`` before ``part10``: digit runs zero-padded."""
    return _DIGITS.sub(lambda m: m.group(0).zfill(20), text.lower())


def sort_key(watch: WatchConfig, rel: str, mtime: float) -> str:
    """Append order within a conversation: file name (natural) or modification time."""
    if watch.conversation.get("order") == "mtime":
        return f"{mtime:020.6f}|{natural_key(rel)}"
    return natural_key(rel)


class Intake:
    """Turns settled paths into recordings; remembers what it has seen for fast rescans."""

    def __init__(
        self,
        store: Store,
        plugins: Plugins,
        recording_view: Callable[[RecordingRow], object],
        *,
        on_new: Callable[[], None],
        renominate: Callable[[WatchConfig, Path], None],
    ) -> None:
        self.store = store
        self.plugins = plugins
        self.recording_view = recording_view
        self.on_new = on_new
        self.renominate = renominate
        self._known: dict[str, dict[str, tuple[int, float]]] = {}
        self._busy: set[Path] = set()

    def known(self, watch: WatchConfig) -> dict[str, tuple[int, float]]:
        if watch.name not in self._known:
            self._known[watch.name] = self.store.known_files(watch.name)
        return self._known[watch.name]

    def is_known(self, watch: WatchConfig, path: Path, size: int, mtime: float) -> bool:
        return self.known(watch).get(relpath(watch, path)) == (size, mtime)

    async def settled(self, watch: WatchConfig, path: Path) -> None:
        """Fingerprint a quiet file and record it (discovered or duplicate)."""
        if path in self._busy:
            return
        self._busy.add(path)
        try:
            await self._settled(watch, path)
        finally:
            self._busy.discard(path)

    async def _settled(self, watch: WatchConfig, path: Path) -> None:
        try:
            before = path.stat()
        except OSError:
            return
        rel = relpath(watch, path)
        if self.is_known(watch, path, before.st_size, before.st_mtime):
            return
        structlog.contextvars.bind_contextvars(watch=watch.name, path=rel)
        try:
            digest = await asyncio.to_thread(sha256_file, path)
        except PermissionError:
            self._record_unreadable(watch, rel, before)
            return
        except OSError:
            return  # vanished while hashing
        try:
            after = path.stat()
        except OSError:
            return
        if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
            self.renominate(watch, path)  # still being written after all
            return
        self._record(watch, rel, after, digest)

    def _record(self, watch: WatchConfig, rel: str, stat: os.stat_result, digest: str) -> None:
        self.known(watch)[rel] = (stat.st_size, stat.st_mtime)
        latest = self.store.latest_for_path(watch.name, rel)
        if latest and latest.sha256 == digest and latest.size_bytes == stat.st_size:
            return  # touched, same content: nothing new
        common = dict(
            watch=watch.name,
            watch_root=str(watch.path),
            relpath=rel,
            size_bytes=stat.st_size,
            mtime=stat.st_mtime,
            sha256=digest,
            sort_key=sort_key(watch, rel, stat.st_mtime),
        )
        original = self.store.original_of(stat.st_size, digest)
        if original is not None:
            row = self.store.insert(**common, state=State.DUPLICATE, duplicate_of=original.id)
            log.info(
                "recording_duplicate",
                recording_id=row.id,
                duplicate_of=original.id,
                original=original.relpath,
            )
            return
        row = self.store.insert(**common)
        log.info(
            "recording_discovered", recording_id=row.id, size_bytes=stat.st_size, sha256=digest
        )
        self._assign_conversation(row)
        self.on_new()

    def _assign_conversation(self, row: RecordingRow) -> None:
        """Decide the conversation key now, so later parts see earlier ones in order."""
        try:
            assign_conversation(self.store, self.plugins, self.recording_view(row))
        except IngestdError as exc:
            state = State.REJECTED if isinstance(exc, Rejected) else State.FAILED
            self.store.transition(
                row.id, state, error=str(exc), failed_from="discovered", facts={"error": str(exc)}
            )
            log.error("recording_finished", recording_id=row.id, outcome=str(state), error=str(exc))

    def _record_unreadable(self, watch: WatchConfig, rel: str, stat: os.stat_result) -> None:
        self.known(watch)[rel] = (stat.st_size, stat.st_mtime)
        error = f"cannot read {rel}: permission denied; fix its permissions, then `ingestd retry`"
        row = self.store.insert(
            watch=watch.name,
            watch_root=str(watch.path),
            relpath=rel,
            size_bytes=stat.st_size,
            mtime=stat.st_mtime,
            sha256=f"unreadable:{stat.st_ino}:{stat.st_mtime_ns}",
        )
        self.store.transition(
            row.id, State.REJECTED, error=error, failed_from="discovered", facts={"error": error}
        )
        log.error("recording_finished", recording_id=row.id, outcome="rejected", error=error)

    def forget(self, watch: WatchConfig, rel: str) -> None:
        self.known(watch).pop(rel, None)
