"""Small helpers for what commands print, so every count reads as English."""

from __future__ import annotations


def plural(count: int, word: str, words: str | None = None) -> str:
    """``1 watch``, ``2 watches``, ``0 recordings``: `words` when adding an s is wrong."""
    return f"{count} {word if count == 1 else words or word + 's'}"
