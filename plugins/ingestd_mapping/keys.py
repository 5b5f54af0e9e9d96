"""Conversation keys: one function per strategy, from a recording to the key of its
conversation (recordings with equal keys form one conversation).

Keys name their strategy and watch, so two watches or strategies never share one by
accident; ``:`` and ``%`` inside a name are percent-encoded, so a key reads back
unambiguously::

    folder:<watch>:<sub/folder>          regex:<watch>:<key>       sidecar:<watch>:<key>
    ttl:<watch>:<group>:<start>          conversation:<conversationId> (a sidecar's id)

A ttl key carries the whole-second mtime of the file that started its conversation, so a
later file finds it through `MappingHistory.recent_keys` and joins it while it is within
the window of the conversation's files.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from ingestd import NEW_CONVERSATION, MappingHistory, Recording

from .options import MappingOptions


def escape(text: str) -> str:
    """A name made safe to sit between the ``:`` of a key."""
    return text.replace("%", "%25").replace(":", "%3A")


def folder_of(relpath: str) -> str | None:
    """The sub-folder of `relpath` under the watch, or None in the watch's own folder."""
    folder = PurePosixPath(relpath).parent.as_posix()
    return None if folder == "." else folder


def regex_group(relpath: str, options: MappingOptions) -> str | None:
    """The pattern's ``key`` group in the file name (or its path), or None without a match."""
    assert options.pattern is not None
    target = relpath if options.match == "path" else PurePosixPath(relpath).name
    found = options.pattern.search(target)
    value = found.group("key") if found else None
    return value or None


def folder_key(recording: Recording) -> str:
    """A sub-folder is one conversation; a file directly in the watched folder is its own,
    so a stray file never joins somebody else's meeting."""
    return _folder_key(recording.watch.name, recording.relpath)


def _folder_key(watch_name: str, relpath: str) -> str:
    folder = folder_of(relpath)
    if folder is None:
        return NEW_CONVERSATION
    return f"folder:{escape(watch_name)}:{folder}"


def regex_key(recording: Recording, options: MappingOptions) -> str:
    """Files whose names yield the same ``key`` group; no match: a conversation of its own."""
    return _regex_key(recording.watch.name, recording.relpath, options)


def _regex_key(watch_name: str, relpath: str, options: MappingOptions) -> str:
    value = regex_group(relpath, options)
    if value is None:
        return NEW_CONVERSATION
    return f"regex:{escape(watch_name)}:{escape(value)}"


def sidecar_key(recording: Recording, key: str) -> str:
    """Files whose sidecars name the same key (within one watch)."""
    return f"sidecar:{escape(recording.watch.name)}:{escape(key)}"


def ttl_key(recording: Recording, options: MappingOptions, history: MappingHistory) -> str:
    """Files of one group whose mtimes follow each other with gaps of at most the window.

    The group is the whole watch, the sub-folder (the watch's own folder counts as one) or
    the pattern's key (no match: a conversation of its own). A file joins the conversation
    whose files' mtimes it is nearest to, within the window; if there is none it starts one.
    """
    prefix = _ttl_prefix(recording.watch.name, recording.relpath, options)
    if prefix is None:
        return NEW_CONVERSATION
    window = options.window_minutes * 60
    mtime = recording.mtime
    nearest: list[tuple[float, float, str]] = []
    for key, latest in history.recent_keys(prefix, mtime - window):
        start = _start_of(key, prefix)
        if start is None or not start - window <= mtime <= latest + window:
            continue
        gap = 0.0 if start <= mtime <= latest else min(abs(mtime - start), abs(mtime - latest))
        nearest.append((gap, -latest, key))
    if nearest:
        return min(nearest)[2]
    return f"{prefix}{int(mtime)}"


def _ttl_prefix(watch_name: str, relpath: str, options: MappingOptions) -> str | None:
    """``ttl:<watch>:<group>:``, what every key of the file's group starts with; None when
    the group is the pattern's and the file does not match it."""
    if options.group == "regex":
        group = regex_group(relpath, options)
        if group is None:
            return None
    elif options.group == "folder":
        group = folder_of(relpath) or "."
    else:
        group = ""
    return f"ttl:{escape(watch_name)}:{escape(group)}:"


def could_match(watch_name: str, relpath: str, key: str, options: MappingOptions) -> bool | None:
    """Could the file at `relpath`, not recorded yet, get `key` under `options`?

    Decided by the strategy alone: a sidecar can only give a file a ``sidecar:`` or
    ``conversation:`` key, never a strategy's, so it cannot make a strategy key match.
    A folder or regex key: exactly when the file's own key would be it (same sub-folder,
    same pattern group). A ttl key: when the file is of the same group, as its mtime may
    still change. None (cannot tell) for sidecar and explicit conversation keys, which any
    file's sidecar may name, and for keys of another strategy than the watch's.
    """
    if options.by == "folder" and key.startswith("folder:"):
        return _folder_key(watch_name, relpath) == key
    if options.by == "regex" and key.startswith("regex:"):
        return _regex_key(watch_name, relpath, options) == key
    if options.by == "ttl" and key.startswith("ttl:"):
        prefix = _ttl_prefix(watch_name, relpath, options)
        return prefix is not None and key.startswith(prefix) and _start_of(key, prefix) is not None
    return None


def _start_of(key: str, prefix: str) -> float | None:
    try:
        return float(key[len(prefix) :])
    except ValueError:  # another group's key that merely starts alike: not ours
        return None
