"""The ordering hold: a queued part of a conversation waits for the files not recorded yet
that sort before it and could turn out to be earlier parts of the same conversation.

A file still settling, or being fingerprinted, has no conversation key yet; once a later
part was POSTed nothing can be put before it. So the dispatcher asks, per queued keyed part,
whether such a file sorts before it and could share its key: the mapping plugin answers
(`ingestd_conversation_key_could_match`: same sub-folder, same pattern group, same ttl
group), and a file it cannot tell about holds the part, as any file of the watch could then
be an earlier part. The hold ends when the file is recorded (`Store.earlier_part_pending`
takes over), vanishes, or proves known or a duplicate.

Under ``conversation.order: mtime`` a file still settling sorts first whatever its current
mtime: a copier that keeps the source's mtime (``cp -p``, rsync ``-t``) shows "now" until
the copy ends and only then sets the mtime it will be ordered by.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import structlog

from ingestd.config import WatchConfig
from ingestd.errors import IngestdError
from ingestd.intake import unrecorded_sort_key
from ingestd.plugins import Plugins
from ingestd.store import RecordingRow
from ingestd.watch import relpath

log = structlog.get_logger()

HOOK = "ingestd_conversation_key_could_match"


class OrderingHold:
    """One dispatch round's answers: build one per round, ask `holds` per queued part.

    Args:
        watches: the configured watches by name.
        plugins: asked whether an unrecorded file could share a part's key.
        settling: the paths of a watch's files not quiet yet.
        unrecorded: a watch's settled files not recorded yet, (path, mtime or None).
    """

    def __init__(
        self,
        watches: Mapping[str, WatchConfig],
        plugins: Plugins,
        settling: Callable[[str], Iterable[Path]],
        unrecorded: Callable[[str], Iterable[tuple[Path, float | None]]],
        reported: set[str] | None = None,
    ) -> None:
        self._watches = watches
        self._plugins = plugins
        self._settling = settling
        self._unrecorded = unrecorded
        self._reported = reported if reported is not None else set()
        self._files: dict[str, list[tuple[str, Path]]] = {}
        self._answers: dict[tuple[Path, str], bool] = {}

    def holds(self, row: RecordingRow) -> bool:
        """True while an unrecorded file that could share the row's key sorts before it.
        Recordings without a conversation key are never held."""
        key = row.conversation_key
        if not key or row.sort_key is None:
            return False
        watch = self._watches.get(row.watch)
        if watch is None:
            return False
        for sort_key, path in self._sorted_files(watch):
            if sort_key >= row.sort_key:
                return False
            if self._could_match(watch, path, key):
                return True
        return False

    def _sorted_files(self, watch: WatchConfig) -> list[tuple[str, Path]]:
        """The watch's unrecorded files by the order their parts would be appended in."""
        if watch.name not in self._files:
            files = [(path, None) for path in self._settling(watch.name)]
            files += self._unrecorded(watch.name)
            self._files[watch.name] = sorted(
                (unrecorded_sort_key(watch, path, mtime), path) for path, mtime in files
            )
        return self._files[watch.name]

    def _could_match(self, watch: WatchConfig, path: Path, key: str) -> bool:
        """The plugins' answer; cannot tell (None), or a failing hook, holds."""
        if (path, key) not in self._answers:
            try:
                answer, _ = self._plugins.call_first(
                    HOOK, watch=watch, relpath=relpath(watch, path), key=key
                )
            except IngestdError as exc:
                if str(exc) not in self._reported:  # once per daemon, not once per round
                    self._reported.add(str(exc))
                    log.warning("ordering_hook_failed", error=str(exc), action="holding parts")
                answer = None
            self._answers[(path, key)] = answer is not False
        return self._answers[(path, key)]
