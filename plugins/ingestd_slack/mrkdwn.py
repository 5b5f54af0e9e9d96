"""Untrusted text made safe for Slack: cleaned, escaped for mrkdwn, trimmed to a limit.

Everything a recording or the API supplies (file names, transcript text, speaker names,
topics) is hostile until it passes through here. Slack's mrkdwn reads ``<...>`` as a
control sequence (``<!channel>`` notifies everyone, ``<@U123>`` mentions someone,
``<http://x|click>`` disguises a link), so the three characters Slack documents are
escaped as HTML entities: ``&`` -> ``&amp;``, ``<`` -> ``&lt;``, ``>`` -> ``&gt;``.
Bare ``@channel``/``@here``/``@everyone`` get an invisible word joiner after the ``@``, in
case a client or a legacy webhook parses them (``link_names``).

Limits are counted in UTF-16 code units, the way a JavaScript string counts, which is never
fewer than Python's code points: trimming to Slack's limits therefore holds whichever of
the two Slack means. Cuts never split an entity or a surrogate pair.
"""

from __future__ import annotations

import re
import unicodedata

ELLIPSIS = "…"

_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_BROADCAST = re.compile(r"@(?=(channel|here|everyone)\b)", re.IGNORECASE)
_WORD_JOINER = "\u2060"
# Bidirectional overrides and isolates can make a name read differently from what it is.
_BIDI = dict.fromkeys(map(ord, "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"))
_LINE_BREAKS = re.compile(r"[\r\n\u2028\u2029\x0b\x0c\x85]+")
_SPACES = re.compile(r"[ \t]+")


def units(text: str) -> int:
    """The length of `text` in UTF-16 code units (an emoji outside the BMP counts 2)."""
    return len(text) + sum(1 for char in text if ord(char) > 0xFFFF)


def clean(text: object, *, flatten: bool = True, max_chars: int | None = None) -> str:
    """Plain, printable text from anything the API or a file name supplied.

    Lone surrogates become U+FFFD (Slack cannot take them), control and bidi characters go,
    runs of spaces shrink; with `flatten` every line break becomes a space as well (names,
    list items), otherwise line breaks are kept as single newlines (summaries). With
    `max_chars`, only about that much is looked at (a cut shows as "…"), so a megabyte of
    transcript costs no more than what can be shown.
    """
    if text is None:
        return ""
    value = str(text)
    if max_chars is not None and len(value) > 2 * max_chars:
        value = value[: 2 * max_chars] + ELLIPSIS
    value = _LINE_BREAKS.sub(" " if flatten else "\n", value.translate(_BIDI))
    value = "".join(_printable(char) for char in value)
    lines = (_SPACES.sub(" ", line).strip() for line in value.split("\n"))
    return "\n".join(line for line in lines if line)


def _printable(char: str) -> str:
    category = unicodedata.category(char)
    if category == "Cs":  # a lone surrogate: not encodable, Slack would refuse the message
        return "\ufffd"
    return " " if category == "Cc" and char != "\n" else char


def defang(text: str) -> str:
    """Break ``@channel``-style broadcasts with an invisible word joiner after the ``@``."""
    return _BROADCAST.sub("@" + _WORD_JOINER, text)


def escape(text: str) -> str:
    """Escape ``&``, ``<`` and ``>`` as Slack requires for mrkdwn and message text."""
    return "".join(_ENTITIES.get(char, char) for char in defang(text))


def fit_mrkdwn(text: str, limit: int) -> str:
    """`text` (already cleaned) escaped for mrkdwn, cut with "…" to at most `limit` units."""
    pieces = [_ENTITIES.get(char, char) for char in defang(text)]
    if sum(units(piece) for piece in pieces) <= limit:
        return "".join(pieces)
    kept: list[str] = []
    used = units(ELLIPSIS)
    for piece in pieces:
        if used + units(piece) > limit:
            break
        kept.append(piece)
        used += units(piece)
    return "".join(kept).rstrip() + ELLIPSIS


def fit_plain(text: str, limit: int) -> str:
    """`text` (already cleaned) cut with "…" to at most `limit` units, not escaped.

    For ``plain_text`` objects (the header), which Slack shows literally.
    """
    if units(text) <= limit:
        return text
    kept: list[str] = []
    used = units(ELLIPSIS)
    for char in text:
        if used + units(char) > limit:
            break
        kept.append(char)
        used += units(char)
    return "".join(kept).rstrip() + ELLIPSIS


def bold(text: str, limit: int) -> str:
    """`text` (already cleaned) as a bold mrkdwn span of at most `limit` units.

    An asterisk inside would end the span early, so it becomes the look-alike U+2217.
    """
    return f"*{fit_mrkdwn(text.replace('*', '∗'), limit - 2)}*"


def code(text: str, limit: int) -> str:
    """`text` (already cleaned) as inline code; backticks inside become U+02CB."""
    return f"`{fit_mrkdwn(text.replace('`', 'ˋ'), limit - 2)}`"
