"""Default conversation names, read back from conversation keys.

A conversation of several parts is named after what joins them, not after whichever file
came first: the bundled mapping keys (``folder:<watch>:<sub/folder>``, ``regex:<watch>:<key>``,
``sidecar:<watch>:<key>``, ``ttl:<watch>:<group>:<start>``, with ``:`` and ``%`` in names
percent-encoded) each say it. Other keys name nothing, and the file name is used.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import PurePosixPath
from urllib.parse import unquote


def conversation_name(key: str | None) -> str | None:
    """The default name of the conversation `key` stands for, or None (use the file's).

    A folder's own name (``meeting-42`` for ``folder:sales:2026/meeting-42``); a regex or
    sidecar key's value; a ttl group (or, grouping the whole watch, the watch) with the
    minute its conversation started, UTC (``sales 2026-05-01 09:30``).
    """
    if not key:
        return None
    kind, _, rest = key.partition(":")
    if kind not in ("folder", "regex", "sidecar", "ttl"):
        return None  # conversation:<id> appends to a conversation named already
    watch, _, value = rest.partition(":")
    if kind == "folder":
        return PurePosixPath(value).name or None
    if kind != "ttl":
        return unquote(value) or None
    group, _, start = value.rpartition(":")
    try:
        when = datetime.fromtimestamp(float(start), UTC).strftime("%Y-%m-%d %H:%M")
    except (ValueError, OverflowError, OSError):
        return None
    label = unquote(group) if group not in ("", ".") else unquote(watch)
    return f"{label} {when}"
