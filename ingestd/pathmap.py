"""A recording's files as this node sees them: nodes of one state database may mount one
shared folder at different paths (``/mnt/nas`` here, ``/Volumes/recordings`` there).

A recording stores the watch's *name*, the root its file was found under and its path
below that root. Each node names the watch the same and gives its own ``path``; a row read
from the store is seen under this node's root for that watch (`localize`), its original
and an upload that is the original itself alike. Work files (transcoded copies) live in
each node's own work directory and are never remapped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

from ingestd.config import WatchConfig
from ingestd.store import RecordingRow


def localize(row: RecordingRow, watches: Mapping[str, WatchConfig]) -> RecordingRow:
    """`row` with its watch root (and an as-is upload path) under this node's mount of
    the watch of the same name; unchanged when this node has no such watch or the same
    root (always so on one machine)."""
    watch = watches.get(row.watch)
    if watch is None or str(watch.path) == row.watch_root:
        return row
    changes: dict[str, str] = {"watch_root": str(watch.path)}
    if row.upload_path:
        try:
            below = Path(row.upload_path).relative_to(row.watch_root)
        except ValueError:
            pass  # a work file: this node's or another's, never under the watch folder
        else:
            changes["upload_path"] = str(watch.path / below)
    return dataclasses.replace(row, **changes)
