"""Checking options the way the core checks its own: one problem per line, keyed by path.

A plugin's options (a sink's ``sinks[i]`` block, a backend's top-level section, its own
per-watch keys) are validated by the plugin. It reports each problem as one line
``key.path: what was expected, got what`` and raises `ConfigError` with all of them; the
core prefixes each line with the file and the line of that key, exactly as for its own
keys::

    ingestd.yaml:14: sinks[0].templat: unknown key; did you mean 'template'?

`unknown_keys` is the "unknown key; did you mean" check every options parser needs;
`OptionProblems` collects lines under one key path and raises them together.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

from ingestd.errors import ConfigError


def unknown_key_message(key: object, known: Iterable[str]) -> str:
    """``unknown key; did you mean 'x'?``, or the known keys when none is close."""
    known = list(known)
    close = difflib.get_close_matches(str(key), known, n=1)
    if close:
        return f"unknown key; did you mean {close[0]!r}?"
    return f"unknown key; known keys: {', '.join(known)}" if known else "unknown key"


def unknown_keys(
    data: Mapping[str, Any],
    known: Iterable[str],
    key_path: str = "",
    *,
    ignored: Iterable[str] = (),
) -> list[str]:
    """One problem line per key of `data` that is neither in `known` nor in `ignored`.

    Args:
        data: the options as written in the YAML.
        known: the keys the plugin reads (suggested in the did-you-mean).
        key_path: where `data` sits (``sinks[0]``, ``watch[sales].transcode``); empty for
            the top level.
        ignored: keys that are allowed but not suggested (``type``, ``name`` of a sink).

    Returns:
        ``sinks[0].templat: unknown key; did you mean 'template'?`` lines, in `data`'s order.
    """
    known = tuple(known)
    allowed = set(known) | set(ignored)
    return [
        f"{_join(key_path, str(key))}: {unknown_key_message(key, known)}"
        for key in data
        if key not in allowed
    ]


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


class OptionProblems:
    """Problem lines under one key path, raised together as one `ConfigError`.

    ::

        problems = OptionProblems("sinks[0]")
        problems.unknown_keys(options, ("path", "formats"))
        if not isinstance(options.get("path"), str):
            problems.add("path", "required (the folder to write results into)")
        problems.raise_if_any()
    """

    def __init__(self, key_path: str) -> None:
        self.key_path = key_path
        self.lines: list[str] = []

    def add(self, key: str, message: str) -> None:
        """Report `message` about `key` (relative to the key path; "" for the path itself)."""
        self.lines.append(f"{_join(self.key_path, key) if key else self.key_path}: {message}")

    def unknown_keys(
        self,
        data: Mapping[str, Any],
        known: Iterable[str],
        where: str = "",
        *,
        ignored: Iterable[str] = (),
    ) -> None:
        """Report the keys of `data` (found at `where` below the key path) nobody reads."""
        prefix = _join(self.key_path, where) if where else self.key_path
        self.lines.extend(unknown_keys(data, known, prefix, ignored=ignored))

    def __bool__(self) -> bool:
        return bool(self.lines)

    def raise_if_any(self) -> None:
        """Raise every problem at once, if there is one."""
        if self.lines:
            raise ConfigError(self.lines)
