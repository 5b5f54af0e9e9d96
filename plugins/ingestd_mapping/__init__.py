"""Bundled plugin: which conversation a recording belongs to (the mapping key).

The watch's ``conversation.by`` picks the strategy (see `options` and `keys`):

- ``none`` (default): each file is a conversation of its own;
- ``folder``: the files of one sub-folder form one conversation; files lying directly in
  the watched folder stay their own, so a stray file never joins somebody else's meeting;
- ``regex``: files whose names yield the same ``(?P<key>...)`` group of ``pattern``;
- ``sidecar``: files whose sidecars name the same ``conversation.key``;
- ``ttl``: files of one group whose mtimes are at most ``window_minutes`` apart.

Whatever the strategy, a sidecar's ``conversation`` section wins for its recording: a
``key`` joins the files with the same sidecar key, a ``conversationId`` appends to that
existing Symbl conversation. The answer is ``trylast``, so an installed plugin overrides
it; the core persists key -> conversationId after the first POST and appends the other
parts one at a time in ``conversation.order``.
"""

from __future__ import annotations

from ingestd import (
    EXISTING_CONVERSATION,
    NEW_CONVERSATION,
    ConfigError,
    MappingHistory,
    Recording,
    WatchConfig,
    hookimpl,
    read_sidecar,
)

from .keys import could_match, folder_key, regex_key, sidecar_key, ttl_key
from .options import STRATEGIES, MappingOptions, parse_options

__all__ = [
    "STRATEGIES",
    "MappingOptions",
    "conversation_key",
    "ingestd_conversation_key",
    "ingestd_conversation_key_could_match",
    "ingestd_validate_watch",
    "parse_options",
]


@hookimpl
def ingestd_validate_watch(watch: WatchConfig) -> list[str]:
    """Check ``watch.conversation`` (strategy, order, pattern, window)."""
    try:
        parse_options(watch)
    except ConfigError as exc:
        return exc.problems
    return []


@hookimpl(trylast=True)
def ingestd_conversation_key(recording: Recording, history: MappingHistory) -> str:
    """The watch's strategy, unless the recording's sidecar names its conversation."""
    return conversation_key(recording, history, parse_options(recording.watch))


@hookimpl(trylast=True)
def ingestd_conversation_key_could_match(watch: WatchConfig, relpath: str, key: str) -> bool | None:
    """Same sub-folder (folder), same pattern group (regex), same group (ttl); None for
    sidecar and explicit conversation keys, which any file's sidecar may name."""
    return could_match(watch.name, relpath, key, parse_options(watch))


def conversation_key(recording: Recording, history: MappingHistory, options: MappingOptions) -> str:
    """The key for `recording` under `options` (`NEW_CONVERSATION`: one of its own)."""
    found = read_sidecar(recording.path, recording.relpath)
    if found.conversation_id is not None:
        return EXISTING_CONVERSATION + found.conversation_id
    if found.conversation_key is not None:
        return sidecar_key(recording, found.conversation_key)
    if options.by == "folder":
        return folder_key(recording)
    if options.by == "regex":
        return regex_key(recording, options)
    if options.by == "ttl":
        return ttl_key(recording, options, history)
    return NEW_CONVERSATION  # none, or sidecar without a sidecar
