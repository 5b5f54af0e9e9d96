"""`ingestd.timeline.plain`: user text on one line, whatever control characters it holds."""

from __future__ import annotations

import sys
import unicodedata

from ingestd.timeline import plain


def reference(text: str) -> str:
    """The definition: whitespace runs become one space, other Cc characters go."""
    kept = "".join(ch for ch in text if ch.isspace() or unicodedata.category(ch) != "Cc")
    return " ".join(kept.split())


def test_every_control_character_is_dropped_or_made_a_space() -> None:
    """Each of Unicode's 65 control characters, inside a word and between words."""
    controls = [chr(c) for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) == "Cc"]
    assert len(controls) == 65
    for ch in controls:
        for text in (f"a{ch}b", f"a {ch} b", f"{ch}a", f"a{ch}"):
            assert plain(text) == reference(text), repr(ch)


def test_other_text_keeps_its_characters() -> None:
    """Format characters, non-breaking and other Unicode spaces, emoji: as the definition."""
    for text in ("Zoë\u200b said\u00a0hi", "line\u2028two\u3000three", "ok 👍\n\n", "", "  "):
        assert plain(text) == reference(text)
    assert plain(None) == "" and plain(42) == "42"
