"""The files sink tests' builders: ingestd.testing's sample conversation, and hostile names."""

from __future__ import annotations

from typing import Any

from ingestd.testing import (
    SAMPLE_CONVERSATION_ID,
    sample_insights,
    sample_message,
    sample_recording,
    sample_result,
)

CONVERSATION_ID = SAMPLE_CONVERSATION_ID

# Names meant to break out of the output folder or confuse a file system.
HOSTILE = [
    "../../etc/x",
    "/etc/passwd",
    "a/../../b",
    "..",
    ".",
    "...",
    "",
    " ",
    "x\x00y",
    "line\nbreak\r\n",
    "<!channel>",
    "\u202eexe.txt\u202c",
    "a" * 500,
    "日本語" * 100,
    "CON",
    "nul.txt",
    "C:\\Windows\\System32",
    "\\\\server\\share\\..\\..",
    "~root",
    ".hidden",
    "..\\..\\x",
    "\ud800 lone surrogate",
    "\u2028\u2029",
]


recording = sample_recording
insights = sample_insights
result = sample_result


def message(
    text: str, speaker: str | None, offset: float | None, duration: float | None, n: int
) -> dict[str, Any]:
    """One §9 message (`sample_message` with these tests' argument order)."""
    return sample_message(n, text, speaker, offset, duration)
