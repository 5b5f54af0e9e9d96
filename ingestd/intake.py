"""Intake: a settled file becomes a stored recording, or is recognised as already known.

Identity is the fingerprint (size + full SHA-256), so a renamed or re-copied file with the
same content is a ``duplicate`` and never sent twice. Hashing runs in a worker thread; if
the file changed while it was hashed, it goes back to settling.

When the state database cannot be written (a full disk, another process's lock), intake
pauses loudly: one error per try, the files settling meanwhile are held, and all of them
go back to settling after a back-off, until a write succeeds. A file counts as known only
once its row is committed, so nothing is lost, whatever fails.

Until then a settled file is *unrecorded* (`Intake.unrecorded`), and its conversation key is
not decided yet: the dispatcher holds back the later parts of a conversation while an
unrecorded file that could share their key sorts before them (`ingestd.ordering`), as it may
turn out to be an earlier part.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import os
import re
import time
from collections.abc import Callable, Coroutine, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import structlog

from ingestd.config import WatchConfig
from ingestd.conversations import decide_conversation
from ingestd.errors import IngestdError, Rejected, StoreError
from ingestd.lifecycle import RESUMABLE_TERMINALS, State, TransitionError
from ingestd.model import Recording
from ingestd.plugins import Plugins
from ingestd.replaced import reads_source, replaced_reason
from ingestd.store import RecordingRow, Store
from ingestd.store.base import AlreadyRecorded
from ingestd.transitions import Transitions
from ingestd.watch import escape_fs, relpath, unescape_fs

log = structlog.get_logger()

_CHUNK = 1 << 20
HASH_THREADS = 2
HASHED_AHEAD = 8
"""Files fingerprinted at a time. A small file hashes far quicker than the commit that
records it: with no bound the threads finished hundreds of hashes while the loop committed
one, and every step of the pipeline (the batch's first probe, its first upload) waited in
asyncio's ready queue behind all their commits (500 files: the first probe 1.7 s after the
first file was recorded). Eight keep the threads busy and each step behind eight at most."""
STORE_RETRY_INITIAL_SECONDS = 2.0
STORE_RETRY_MAX_SECONDS = 30.0
"""Back-off between tries while the state database cannot be written."""
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
    return _ordered(watch, natural_key(rel), mtime)


def _ordered(watch: WatchConfig, name: str, mtime: float | None) -> str:
    """`sort_key` from a `natural_key` name; an mtime not looked at yet (None) sorts first."""
    if watch.conversation.get("order") != "mtime":
        return name
    if mtime is None:
        return ""
    return f"{mtime:020.6f}|{name}"


@functools.lru_cache(maxsize=1 << 16)
def _natural_relpath(root: Path, path: Path) -> str:
    """`natural_key` of `relpath`; memoised, as the dispatcher asks it on each round."""
    return natural_key(escape_fs(path.relative_to(root).as_posix()))


def unrecorded_sort_key(watch: WatchConfig, path: Path, mtime: float | None) -> str:
    """The `sort_key` a file of `watch` not recorded yet will get; an mtime not known yet
    (None) sorts first, as the file could be the earliest."""
    return _ordered(watch, _natural_relpath(watch.path, path), mtime)


def first_sort_key(watch: WatchConfig, files: Iterable[tuple[Path, float | None]]) -> str | None:
    """The lowest `unrecorded_sort_key` among `files` of `watch`, (path, mtime or None)
    each; None if there are none."""
    return min((unrecorded_sort_key(watch, path, mtime) for path, mtime in files), default=None)


async def _nothing() -> None:
    return None


class Intake:
    """Turns settled paths into recordings; remembers what it has seen for fast rescans."""

    def __init__(
        self,
        store: Store,
        plugins: Plugins,
        recording_view: Callable[[RecordingRow], Recording],
        *,
        on_new: Callable[[], None],
        renominate: Callable[[WatchConfig, Path], None],
    ) -> None:
        self.store = store
        self.plugins = plugins
        self.transitions = Transitions(store, plugins, recording_view)
        self.on_new = on_new
        self.renominate = renominate
        self._known: dict[str, dict[str, tuple[int, float]]] = {}
        # settled, now being fingerprinted and recorded; the mtime once it was looked at
        self._busy: dict[Path, tuple[WatchConfig, float | None]] = {}
        # while the store fails: files held until the next try, and when that is
        self._held: dict[Path, WatchConfig] = {}
        self._store_failures = 0
        self._paused_until = 0.0
        self._retry: asyncio.TimerHandle | None = None
        # Hashing has threads of its own: a batch of hundreds of files would otherwise queue
        # ahead of the pipeline's probes and upload reads in asyncio's shared pool.
        self._hashing = ThreadPoolExecutor(HASH_THREADS, thread_name_prefix="ingestd-hash")
        self._hash_slots = asyncio.Semaphore(HASHED_AHEAD)
        # set (and replaced) whenever a file leaves `_busy` or gets its mtime: `_wait_turn`
        self._turn = asyncio.Event()

    def known(self, watch: WatchConfig) -> dict[str, tuple[int, float]]:
        if watch.name not in self._known:
            self._known[watch.name] = self.store.known_files(watch.name)
        return self._known[watch.name]

    def is_known(self, watch: WatchConfig, path: Path, size: int, mtime: float) -> bool:
        return self.known(watch).get(relpath(watch, path)) == (size, mtime)

    def settled(self, watch: WatchConfig, path: Path) -> Coroutine[Any, Any, None]:
        """Fingerprint a quiet file and record it (discovered or duplicate): await the result.

        The file is `unrecorded` from this call on, not only once the coroutine starts, so
        no dispatch round falls between the settler letting go of it and intake taking it.

        The coroutine never raises: it runs as a fire-and-forget task. A store failure holds
        the file for a later try (`paused`); a bug is logged with its traceback, and the file
        is left unknown, so the next rescan offers it again.
        """
        if path in self._busy:
            return _nothing()
        if self.paused:
            self._held[path] = watch
            return _nothing()
        self._busy[path] = (watch, None)
        return self._settle(watch, path)

    async def _settle(self, watch: WatchConfig, path: Path) -> None:
        try:
            recorded = await self._settled(watch, path)
        except StoreError as exc:
            self._store_failed(watch, path, exc)
        except Exception:
            self._forget_path(watch, path)
            log.exception("intake_crashed", watch=watch.name, path=relpath(watch, path))
        else:
            if recorded and self._store_failures:
                log.info("intake_resumed", failures=self._store_failures)
                self._store_failures = 0
        finally:
            del self._busy[path]
            self._pass_turn()
            self.on_new()  # recorded, gone, known or held: a part held back for it may go

    def unrecorded(self, watch_name: str) -> list[tuple[Path, float | None]]:
        """The watch's settled files not recorded yet (being fingerprinted, or held while the
        state database cannot be written): (path, mtime, or None if not looked at yet)."""
        busy = [(p, mtime) for p, (w, mtime) in self._busy.items() if w.name == watch_name]
        held = [(p, None) for p, w in self._held.items() if w.name == watch_name]
        return busy + held

    @property
    def paused(self) -> bool:
        """True while waiting to try the state database again after a failed write."""
        return time.monotonic() < self._paused_until

    def _store_failed(self, watch: WatchConfig, path: Path, exc: StoreError) -> None:
        """Hold the file, pause intake with a back-off, and say so, at error level."""
        self._forget_path(watch, path)
        self._held[path] = watch
        self._store_failures += 1
        delay = min(
            STORE_RETRY_MAX_SECONDS,
            STORE_RETRY_INITIAL_SECONDS * 2 ** (self._store_failures - 1),
        )
        self._paused_until = time.monotonic() + delay
        log.error(
            "intake_paused",
            error=str(exc),
            files_held=len(self._held),
            retry_in_s=delay,
            action="files that settle meanwhile are recorded once the state database "
            "can be written again",
        )
        if self._retry is None:
            self._retry = asyncio.get_running_loop().call_later(delay, self._release_held)

    def _release_held(self) -> None:
        """The pause is over: every held file settles again, then is recorded."""
        self._retry = None
        if self.paused:  # paused again meanwhile; try when that pause ends
            delay = self._paused_until - time.monotonic()
            self._retry = asyncio.get_running_loop().call_later(delay, self._release_held)
            return
        held, self._held = self._held, {}
        for path, watch in held.items():
            self.renominate(watch, path)

    def _forget_path(self, watch: WatchConfig, path: Path) -> None:
        """Not known any more: a rescan or a renomination records it again."""
        known = self._known.get(watch.name)
        if known is not None:
            known.pop(relpath(watch, path), None)

    async def _settled(self, watch: WatchConfig, path: Path) -> bool:
        """True once the state database has the file (written now, or found there)."""
        try:
            before = path.stat()
        except OSError:
            return False
        self._busy[path] = (watch, before.st_mtime)
        self._pass_turn()
        rel = relpath(watch, path)
        if self.is_known(watch, path, before.st_size, before.st_mtime):
            return False
        structlog.contextvars.bind_contextvars(watch=watch.name, path=rel)
        try:
            async with self._hash_slots:
                digest = await asyncio.get_running_loop().run_in_executor(
                    self._hashing, sha256_file, path
                )
        except PermissionError:
            self._record_unreadable(watch, rel, before)
            return True
        except OSError:
            return False  # vanished while hashing
        try:
            after = path.stat()
        except OSError:
            return False
        if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
            self.renominate(watch, path)  # still being written after all
            return False
        await self._wait_turn(watch, path, after.st_mtime)
        if self.paused:  # the store failed while this file was hashed
            self._held[path] = watch
            return False
        self._record(watch, rel, after, digest)
        return True

    def _pass_turn(self) -> None:
        """Wake the files waiting in `_wait_turn` to look again."""
        self._turn.set()
        self._turn = asyncio.Event()

    async def _wait_turn(self, watch: WatchConfig, path: Path, mtime: float) -> None:
        """In a watch with conversation mapping, record files in their append order.

        A key can depend on the files before it (a ttl file joins the conversation of the
        nearest earlier one), so it is decided only once the earlier-sorting files being
        fingerprinted beside it are recorded; which hash thread finishes first must not
        decide the grouping. Fingerprints still run in parallel: only the commits take turns.
        """
        if not watch.conversation:
            return
        mine = (unrecorded_sort_key(watch, path, mtime), str(path))
        while any(
            (unrecorded_sort_key(w, other, when), str(other)) < mine
            for other, (w, when) in self._busy.items()
            if other != path and w.name == watch.name
        ):
            await self._turn.wait()

    def _record(self, watch: WatchConfig, rel: str, stat: os.stat_result, digest: str) -> None:
        """Commit the recording, then remember the file (so a failed commit is retried).

        Nodes watching one shared folder each see the file; the store records it once
        (`AlreadyRecorded` for the others), whichever node gets there first."""
        try:
            self._record_new(watch, rel, stat, digest)
        except AlreadyRecorded as exc:
            self.known(watch)[rel] = (stat.st_size, stat.st_mtime)
            log.debug("recording_known", recording_id=exc.row.id, reason="recorded by another node")

    def _record_new(self, watch: WatchConfig, rel: str, stat: os.stat_result, digest: str) -> None:
        latest = self.store.latest_for_path(watch.name, rel)
        if latest and latest.sha256 == digest and latest.size_bytes == stat.st_size:
            self.known(watch)[rel] = (stat.st_size, stat.st_mtime)
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
            row = self.transitions.record(**common, state=State.DUPLICATE, duplicate_of=original.id)
            self.known(watch)[rel] = (stat.st_size, stat.st_mtime)
            log.info(
                "recording_duplicate",
                recording_id=row.id,
                duplicate_of=original.id,
                original=original.relpath,
            )
            self._dismiss_replaced(latest, original)
            return
        # The key is decided before the row is written, and stored with it in one commit:
        # a later part's ordering gate never sees this row without its key.
        unsaved = Recording(
            id=0,
            path=watch.path / unescape_fs(rel),
            relpath=rel,
            watch=watch,
            size_bytes=stat.st_size,
            mtime=stat.st_mtime,
            sha256=digest,
            state=str(State.DISCOVERED),
        )
        try:
            key, pinned = decide_conversation(self.store, self.plugins, unsaved)
        except StoreError:
            raise  # nothing written: the file is held and recorded once the store works
        except IngestdError as exc:
            self._record_refused(common, exc)
            self.known(watch)[rel] = (stat.st_size, stat.st_mtime)
            return
        row = self.transitions.record(**common, conversation_key=key, pinned_conversation=pinned)
        self.known(watch)[rel] = (stat.st_size, stat.st_mtime)
        log.info(
            "recording_discovered", recording_id=row.id, size_bytes=stat.st_size, sha256=digest
        )
        self._dismiss_replaced(latest, row)
        self.on_new()

    def _record_refused(self, common: dict[str, Any], exc: IngestdError) -> None:
        """The mapping hook refused the file (a bad sidecar) or broke: record it as such."""
        state = State.REJECTED if isinstance(exc, Rejected) else State.FAILED
        row = self.transitions.record(**common)
        self.transitions.change(
            row, state, error=str(exc), failed_from="discovered", facts={"error": str(exc)}
        )
        log.error("recording_finished", recording_id=row.id, outcome=str(state), error=str(exc))

    def _dismiss_replaced(self, previous: RecordingRow | None, successor: RecordingRow) -> None:
        """The file of a rejected (or failed before upload) recording was replaced, as its
        message advised: the old row needs nobody any more, and a retry must not revive it."""
        if previous is None or previous.state not in RESUMABLE_TERMINALS:
            return
        if not reads_source(previous):  # its content reached the API: still worth a look
            return
        reason = replaced_reason(previous, successor)
        # retried or dismissed meanwhile: then the pipeline checks the file again
        with contextlib.suppress(TransitionError):
            self.transitions.change(
                previous, State.DISMISSED, error=reason, facts={"reason": reason}
            )

    def _record_unreadable(self, watch: WatchConfig, rel: str, stat: os.stat_result) -> None:
        """Record the file as rejected; a retry after a failed commit adds no second row."""
        error = f"cannot read {rel}: permission denied; fix its permissions, then `ingestd retry`"
        fingerprint = f"unreadable:{stat.st_ino}:{stat.st_mtime_ns}"
        row = self.store.latest_for_path(watch.name, rel)
        if row is None or row.sha256 != fingerprint:
            row = self.transitions.record(
                watch=watch.name,
                watch_root=str(watch.path),
                relpath=rel,
                size_bytes=stat.st_size,
                mtime=stat.st_mtime,
                sha256=fingerprint,
            )
        if row.state is State.DISCOVERED:
            self.transitions.change(
                row,
                State.REJECTED,
                error=error,
                failed_from="discovered",
                facts={"error": error},
            )
            log.error("recording_finished", recording_id=row.id, outcome="rejected", error=error)
        self.known(watch)[rel] = (stat.st_size, stat.st_mtime)

    def forget(self, watch: WatchConfig, rel: str) -> None:
        self.known(watch).pop(rel, None)
