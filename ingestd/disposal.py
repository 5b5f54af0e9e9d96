"""What happens to a file once its recording is finished: ``after_success`` and
``after_rejected`` per watch (keep, the default; move to a folder; delete).

The file is touched only when it is certain the work is done and the file is the one that was
processed: the recording is ``done`` (every sink confirmed delivery; a failed sink holds the
original back) or ``rejected``, and the file is unchanged since its fingerprint (size and
mtime; the SHA-256 again when only the mtime differs). Each part of a mapped conversation is
handled once its own delivery is confirmed.

A move keeps the path below the watch (``team/weekly sync.wav`` goes to
``DIR/team/weekly sync.wav``), never overwrites (``weekly sync (1).wav`` instead), and is
durable across file systems and crashes, one recorded step at a time (`Disposal` in
`ingestd.lifecycle`):

1. ``planned``: the target path is chosen and stored before anything is touched;
2. the target is made: a hard link on the same file system, else a copy to a temporary name,
   fsync, then a no-overwrite link (or rename) to the target and an fsync of its folder;
3. ``copied``: stored once the target is complete; from here the target is the copy that
   counts, and a restart only finishes the removal;
4. the source is removed (and its folder fsynced), then ``done``.

A crash between any two steps leaves one complete copy and a state that says which: in
``planned`` a target that already holds the same bytes is taken as made (no second copy);
in ``copied`` the source is removed if still there. A DIR inside a watch is ignored by it
(a moved file is never mistaken for a new one). A moved rejected file gets
``NAME.error.txt`` beside it with the reason. ``delete`` needs ``confirm: true`` next to it.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from ingestd.config import AfterAction, Config, WatchConfig
from ingestd.crashpoints import crash_point
from ingestd.errors import StoreError
from ingestd.lifecycle import Disposal, State
from ingestd.logging import redact
from ingestd.pathmap import localize
from ingestd.store import RecordingRow, Store

if TYPE_CHECKING:
    from ingestd.aftermath import SharedWork

log = structlog.get_logger()

ACTIONS = {"after_success": ("keep", "move", "delete"), "after_rejected": ("keep", "move")}
_KEYS = ("action", "to", "confirm")
TEMP_SUFFIX = ".ingestd-move"
"""A copy in progress is written as ``.NAME.<random>.ingestd-move`` in the target folder."""


# -- configuration --------------------------------------------------------------------------


def parse_after(
    data: Mapping[str, Any],
    prefix: str,
    base: Path,
    watch_path: Path,
    add_problem: Callable[[str, str], None],
) -> dict[str, AfterAction]:
    """The ``after_success`` and ``after_rejected`` sections of one watch.

    `add_problem(key_path, message)` collects problems; the result holds only valid entries.
    """
    out: dict[str, AfterAction] = {}
    for section, actions in ACTIONS.items():
        raw = data.get(section)
        if raw is None:
            continue
        path = f"{prefix}.{section}"
        if isinstance(raw, str):
            raw = {"action": raw}
        if not isinstance(raw, Mapping):
            add_problem(path, f"expected a mapping like {{action: move, to: DIR}}, got {raw!r}")
            continue
        for key in raw:
            if key not in _KEYS or (key == "confirm" and section != "after_success"):
                add_problem(f"{path}.{key}", f"unknown key (known: {', '.join(_KEYS)})")
        action = raw.get("action", "keep")
        if action not in actions:
            add_problem(f"{path}.action", f"expected one of {', '.join(actions)}, got {action!r}")
            continue
        to = raw.get("to")
        target: Path | None = None
        if action == "move":
            if not isinstance(to, str) or not to:
                add_problem(f"{path}.to", "expected the folder to move files to (required)")
                continue
            target = (base / to).expanduser().resolve()
            if target == watch_path:
                add_problem(f"{path}.to", "is the watched folder itself; use a folder below it")
                continue
        elif to is not None:
            add_problem(f"{path}.to", f"only used with action: move, but action is {action!r}")
        if action == "delete" and raw.get("confirm") is not True:
            add_problem(
                f"{path}.confirm",
                "action: delete needs `confirm: true` beside it (a typo must not delete "
                "recordings)",
            )
            continue
        out[section] = AfterAction(action=str(action), to=target)
    return out


def ignore_move_targets(watches: list[WatchConfig]) -> list[WatchConfig]:
    """Each watch with every move folder inside it ignored (its own or another watch's),
    so a moved file is never taken for a new one."""
    import dataclasses

    targets = [
        a.to
        for w in watches
        for a in (w.after_success, w.after_rejected)
        if a.action == "move" and a.to is not None
    ]
    out = []
    for watch in watches:
        inside = [
            t.relative_to(watch.path).as_posix() for t in targets if t.is_relative_to(watch.path)
        ]
        extra = tuple(f"{rel}/*" for rel in dict.fromkeys(inside) if f"{rel}/*" not in watch.ignore)
        out.append(dataclasses.replace(watch, ignore=watch.ignore + extra) if extra else watch)
    return out


# -- the file system steps ------------------------------------------------------------------


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def unchanged(row: RecordingRow, path: Path) -> str | None:
    """None when `path` still holds what `row` fingerprinted; else why not."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return "gone"
    if stat.st_size != row.size_bytes:
        return "its size changed since it was fingerprinted"
    if stat.st_mtime != row.mtime and _sha256(path) != row.sha256:  # mtime alone: look inside
        return "its content changed since it was fingerprinted"
    return None


def same_bytes(path: Path, row: RecordingRow) -> bool:
    """True when `path` exists and holds the recording's bytes."""
    try:
        return path.stat().st_size == row.size_bytes and _sha256(path) == row.sha256
    except OSError:
        return False


def free_target(target: Path) -> Path:
    """`target`, or ``NAME (1).ext``, ``NAME (2).ext``, ... : the first name not taken."""
    candidate, n = target, 0
    while candidate.exists() or candidate.is_symlink():
        n += 1
        candidate = target.with_name(f"{target.stem} ({n}){target.suffix}")
    return candidate


def _link_no_overwrite(source: Path, target: Path) -> bool:
    """Hard-link `source` as `target`; False when links are impossible here (another file
    system, or one without hard links). FileExistsError when the name is taken."""
    try:
        os.link(source, target, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EMLINK, errno.ENOSYS):
            return False
        raise
    return True


def _copy_durably(source: Path, target: Path) -> None:
    """Copy to a temporary name beside `target`, fsync, then put it at `target` without ever
    overwriting (FileExistsError when the name got taken meanwhile)."""
    temporary = target.with_name(f".{target.name}.{os.urandom(4).hex()}{TEMP_SUFFIX}")
    try:
        with source.open("rb") as src, temporary.open("xb") as dst:
            while chunk := src.read(1 << 20):
                dst.write(chunk)
            dst.flush()
            os.fsync(dst.fileno())
        stat = source.stat()
        os.utime(temporary, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        os.chmod(temporary, stat.st_mode & 0o7777)
        crash_point("move_copy_written")
        if not _link_no_overwrite(temporary, target):
            if target.exists():
                raise FileExistsError(errno.EEXIST, "target exists", str(target))
            os.rename(temporary, target)  # no hard links here: the exists check must do
    finally:
        temporary.unlink(missing_ok=True)


def _write_error_note(target: Path, row: RecordingRow) -> None:
    """``NAME.error.txt`` beside a moved rejected file: why it was rejected."""
    note = target.with_name(f"{target.name}.error.txt")
    text = (
        f"{row.watch}/{row.relpath} was rejected by ingestd (recording #{row.id}):\n"
        f"{redact(row.error or 'no reason recorded')}\n"
        f"Fix or replace the file and put it back into the watched folder to try again.\n"
    )
    temporary = note.with_name(f".{note.name}{TEMP_SUFFIX}")
    with temporary.open("w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, note)


# -- the daemon's side ----------------------------------------------------------------------


_UNFINISHED = (Disposal.PLANNED, Disposal.COPIED)


class Disposals:
    """Plans (from ``done``/``rejected`` events) and carries out each file's action."""

    def __init__(
        self, config: Callable[[], Config], store: Store, shared: SharedWork | None = None
    ) -> None:
        self._config = config
        self.store = store
        self.shared = shared

    def _watches(self) -> dict[str, WatchConfig]:
        return {w.name: w for w in self._config().watches}

    def _action(self, row: RecordingRow) -> AfterAction | None:
        watch = {w.name: w for w in self._config().watches}.get(row.watch)
        if watch is None:
            return None
        if row.state is State.DONE:
            return watch.after_success
        if row.state is State.REJECTED:
            return watch.after_rejected
        return None

    @property
    def wanted(self) -> bool:
        return any(
            a.action != "keep"
            for w in self._config().watches
            for a in (w.after_success, w.after_rejected)
        )

    def on_event(self, event: dict[str, Any]) -> None:
        """A recording became ``done`` or ``rejected``: plan its file's action."""
        if event["new"] not in (str(State.DONE), str(State.REJECTED)):
            return
        if self.store.disposal(event["recording_id"]) is not None:
            return
        row = self.store.get(event["recording_id"])
        after = self._action(row)
        if after is None or after.action == "keep":
            return
        if self.store.versions_of(row.watch, row.relpath)[-1] != row.id:
            return  # a newer version of the file is at that path now: it is not ours
        target = None
        if after.action == "move":
            assert after.to is not None
            target = str(free_target(after.to / row.relpath))
        if self.store.plan_disposal(row.id, after.action, target):
            log.info("after_planned", recording_id=row.id, action=after.action, target=target)

    async def run_due(self, now: float) -> None:
        for due in self.store.disposals_due(now):
            if not self._take(due["recording_id"]):
                continue
            # with several nodes, another may have carried it out since the list was read
            planned = self.store.disposal(due["recording_id"]) if self.shared else due
            try:
                if planned is None or Disposal(planned["state"]) not in _UNFINISHED:
                    continue
                await self.carry_out(planned)
            except OSError as exc:
                self._failed_attempt(planned, exc)
            except StoreError:
                raise
            except Exception as exc:  # a bug: this file's action fails, the daemon goes on
                log.exception("after_crashed", recording_id=planned["recording_id"])
                self.store.mark_disposal(
                    planned["recording_id"],
                    Disposal.FAILED,
                    detail=redact(f"internal error: {exc!r}"),
                )
            finally:
                if self.shared is not None:
                    self.shared.done(due["recording_id"])

    def _take(self, recording_id: int) -> bool:
        """With several nodes: this node acts on the file only if it watches its folder
        and claims the recording (no other node is at it)."""
        if self.shared is None:
            return True
        watch = {w.name: w for w in self._config().watches}.get(self.store.get(recording_id).watch)
        if watch is None or not watch.path.is_dir():
            return False
        return self.shared.take(recording_id)

    def _failed_attempt(self, planned: dict[str, Any], exc: OSError) -> None:
        from ingestd.pipeline import backoff_seconds

        pipeline = self._config().pipeline
        attempts = planned["attempts"] + 1
        error = redact(f"{exc.strerror or exc} ({exc.filename})" if exc.filename else str(exc))
        rid = planned["recording_id"]
        state = Disposal(planned["state"])
        if attempts >= pipeline.max_attempts and state is Disposal.PLANNED:
            self.store.mark_disposal(rid, Disposal.FAILED, attempts=attempts, detail=error)
            log.error("after_failed", recording_id=rid, error=error)
            return
        # a copied one stays copied (its target is complete): only the removal is retried
        delay = backoff_seconds(
            attempts, pipeline.retry_initial_seconds, pipeline.retry_max_seconds
        )
        self.store.mark_disposal(
            rid, state, attempts=attempts, detail=error, next_attempt_at=time.time() + delay
        )
        log.warning("after_retry_scheduled", recording_id=rid, attempt=attempts, error=error)

    async def carry_out(self, planned: dict[str, Any]) -> None:
        """One disposition from wherever its last recorded step left it. File work runs in
        threads; the store is written from the event loop only."""
        row = localize(self.store.get(planned["recording_id"]), self._watches())
        state = Disposal(planned["state"])
        source = row.path
        if planned["action"] == "delete":
            why = await asyncio.to_thread(unchanged, row, source)
            if why == "gone":  # removed before a crash let `done` be stored (or by hand)
                self.store.mark_disposal(row.id, Disposal.DONE, detail="the file was gone")
                return
            if why is not None:
                self._hold(row, why)
                return
            await asyncio.to_thread(_remove, source)
            crash_point("delete_removed")
            self.store.mark_disposal(row.id, Disposal.DONE, detail=None)
            log.info("after_deleted", recording_id=row.id, path=row.relpath)
            return
        target = Path(planned["target"])
        if state is Disposal.PLANNED:
            why = await asyncio.to_thread(unchanged, row, source)
            if why == "gone" and await asyncio.to_thread(same_bytes, target, row):
                pass  # removed after the copy, before `copied` was stored (or moved by hand)
            elif why is not None:
                self._hold(row, why)
                return
            else:
                target = await self._make_target(row, source, target)
                if row.state is State.REJECTED:
                    await asyncio.to_thread(_write_error_note, target, row)
            crash_point("move_target_made")
            self.store.mark_disposal(row.id, Disposal.COPIED, target=str(target))
            crash_point("move_copied_recorded")
        # copied: the target is complete; remove the source if it is still the same file
        if await asyncio.to_thread(unchanged, row, source) is None:
            await asyncio.to_thread(_remove, source)
        crash_point("move_source_removed")
        self.store.mark_disposal(row.id, Disposal.DONE, detail=None)
        log.info("after_moved", recording_id=row.id, path=row.relpath, target=str(target))

    async def _make_target(self, row: RecordingRow, source: Path, target: Path) -> Path:
        """Materialise the complete target; the path it ended at (a new number if taken)."""
        while True:
            outcome = await asyncio.to_thread(_make_one, row, source, target)
            if outcome is not None:
                return outcome
            target = await asyncio.to_thread(free_target, target)
            self.store.mark_disposal(row.id, Disposal.PLANNED, target=str(target))

    def _hold(self, row: RecordingRow, why: str) -> None:
        detail = "the file is gone" if why == "gone" else why
        self.store.mark_disposal(row.id, Disposal.HELD, detail=f"not touched: {detail}")
        log.warning("after_held", recording_id=row.id, path=row.relpath, reason=detail)


def _make_folders(folder: Path) -> None:
    """Create `folder` and its missing parents, each entry fsynced into its parent, so the
    path to a target survives a power cut as the target itself does."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for created in reversed(missing):
        created.mkdir(exist_ok=True)
        _fsync_folder(created.parent)


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)
    _fsync_folder(path.parent)


def _make_one(row: RecordingRow, source: Path, target: Path) -> Path | None:
    """Make `target` hold the recording's bytes; None when the name is someone else's."""
    _make_folders(target.parent)
    for stale in target.parent.glob(f".{glob_escape(target.name)}.*{TEMP_SUFFIX}"):
        stale.unlink(missing_ok=True)  # a copy a crash interrupted
    if same_bytes(target, row):
        return target  # made before a crash, its `copied` never stored
    if target.exists() or target.is_symlink():
        return None
    try:
        if not _link_no_overwrite(source, target):
            _copy_durably(source, target)
    except FileExistsError:
        return None  # someone took the name meanwhile
    _fsync_folder(target.parent)
    return target


def glob_escape(name: str) -> str:
    import glob

    return glob.escape(name)


def story(store: Store, row: RecordingRow) -> dict[str, Any]:
    """The ``after`` section of `ingestd show`."""
    planned = store.disposal(row.id)
    if planned is None:
        return {}
    return {
        "after": {
            "action": planned["action"],
            "state": planned["state"],
            "target": planned["target"],
            "detail": planned["detail"],
            "attempts": planned["attempts"],
            "updated_at": planned["updated_at"],
        }
    }


def render(story: dict[str, Any]) -> list[str]:
    after = story.get("after")
    if not after:
        return []
    where = f" -> {after['target']}" if after["target"] else ""
    detail = f"  ({after['detail']})" if after["detail"] else ""
    return [f"  after        {after['action']}{where}: {after['state']}{detail}"]
