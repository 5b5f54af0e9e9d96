"""The per-watch ``conversation`` options: which recordings form one conversation, and in
which order its parts are appended.

::

    conversation:
      by: ttl                 # none (default) | folder | regex | sidecar | ttl
      order: mtime            # name (default) | mtime: the order parts are appended in
      pattern: 'meeting-(?P<key>\\d+)-part\\d+'   # regex: a named group "key"
      match: name             # regex: name (default) or path, what the pattern searches
      window_minutes: 20      # ttl: the longest gap between two parts (default 30)
      group: folder           # ttl: watch (default) | folder | regex, who may share one
      close_after_minutes: 120  # no part for this long: the conversation is closed

The core reads ``order`` and ``close_after_minutes`` itself; this plugin only validates them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ingestd import ConfigError, WatchConfig, unknown_keys

STRATEGIES = ("none", "folder", "regex", "sidecar", "ttl")
ORDERS = ("name", "mtime")
MATCH_TARGETS = ("name", "path")
TTL_GROUPS = ("watch", "folder", "regex")
KEYS = ("by", "order", "pattern", "match", "window_minutes", "group", "close_after_minutes")
DEFAULT_WINDOW_MINUTES = 30.0


@dataclass(frozen=True)
class MappingOptions:
    """A watch's validated ``conversation`` section."""

    by: str = "none"
    order: str = "name"
    pattern: re.Pattern[str] | None = None
    match: str = "name"
    window_minutes: float = DEFAULT_WINDOW_MINUTES
    group: str = "watch"

    @property
    def uses_pattern(self) -> bool:
        return self.by == "regex" or (self.by == "ttl" and self.group == "regex")


def parse_options(watch: WatchConfig) -> MappingOptions:
    """Validate ``watch.conversation``; raise `ConfigError` listing every bad key.

    Each problem names its key as ``watch[<name>].conversation.<key>``.
    """
    data: Mapping[str, Any] = watch.conversation or {}
    prefix = f"watch[{watch.name}].conversation"
    problems: list[str] = []

    def bad(key: str, message: str) -> None:
        problems.append(f"{prefix}.{key}: {message}")

    problems.extend(unknown_keys(data, KEYS, prefix))

    by = _choice(data, "by", STRATEGIES, bad)
    order = _choice(data, "order", ORDERS, bad)
    match = _choice(data, "match", MATCH_TARGETS, bad)
    group = _choice(data, "group", TTL_GROUPS, bad)

    window = data.get("window_minutes", DEFAULT_WINDOW_MINUTES)
    if (
        isinstance(window, bool)
        or not isinstance(window, int | float)
        or not (math.isfinite(window) and window > 0)
    ):
        bad("window_minutes", f"expected a number of minutes > 0, got {window!r}")
        window = DEFAULT_WINDOW_MINUTES

    close = data.get("close_after_minutes")
    if close is not None and (
        isinstance(close, bool)
        or not isinstance(close, int | float)
        or not (math.isfinite(close) and close > 0)
    ):
        bad("close_after_minutes", f"expected a number of minutes > 0, got {close!r}")
    elif close is not None and by == "none":
        bad("close_after_minutes", "only used when parts are mapped (by is not 'none')")

    uses_pattern = MappingOptions(by=by, group=group).uses_pattern
    pattern = _pattern(data.get("pattern"), uses_pattern, bad)
    for key, used in (
        ("match", uses_pattern),
        ("window_minutes", by == "ttl"),
        ("group", by == "ttl"),
    ):
        if key in data and not used:
            when = "by: ttl" if key != "match" else "by: regex (or by: ttl with group: regex)"
            bad(key, f"only used with {when}, but by is {by!r}")
    if problems:
        raise ConfigError(problems)
    return MappingOptions(
        by=by, order=order, pattern=pattern, match=match, window_minutes=float(window), group=group
    )


def _choice(data: Mapping[str, Any], key: str, choices: tuple[str, ...], bad: Any) -> str:
    value = data.get(key, choices[0])
    if value not in choices:
        bad(key, f"expected one of {', '.join(choices)}, got {value!r}")
        return choices[0]
    return str(value)


def _pattern(raw: Any, used: bool, bad: Any) -> re.Pattern[str] | None:
    if raw is None:
        if used:
            bad("pattern", "missing: a regular expression with a group (?P<key>...) is needed")
        return None
    if not used:
        bad("pattern", "only used with by: regex (or by: ttl with group: regex)")
        return None
    if not isinstance(raw, str):
        bad("pattern", f"expected a regular expression, got {raw!r}")
        return None
    try:
        pattern = re.compile(raw)
    except re.error as exc:
        bad("pattern", f"not a valid regular expression ({exc})")
        return None
    if "key" not in pattern.groupindex:
        bad("pattern", "expected a named group (?P<key>...) for the conversation key")
        return None
    return pattern
