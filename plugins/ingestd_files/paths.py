"""Safe output paths: a template rendered from untrusted names, proven to stay inside the root.

Conversation names come from file names, sidecars and the API, so any of them may be
hostile (``../../etc/x``, ``\\x00``, ``<!channel>``, RTL overrides, 500 characters). Two
independent defences keep every write inside the sink's root:

1. each field is cleaned so it can never form or cross a path level, and each rendered level
   is cleaned again (no leading dots, no Windows-reserved names, at most 120 bytes);
2. the joined path is resolved (following any symlink already on disk) and refused unless it
   is strictly inside the resolved root.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path, PurePath

from ingestd import Permanent, Result
from ingestd_files.render import first_part, part_date

COMPONENT_MAX_BYTES = 120
"""Longest path level written, in UTF-8 bytes: well under the usual 255-byte limit."""

FIELD_MAX_BYTES = 80
"""Longest single field, so a long name cannot push the conversation id out of its level."""

_RESERVED_CHARS = frozenset('<>:"/\\|?*')  # separators and what Windows refuses
_KEEP_FORMAT_CHARS = frozenset("\u200c\u200d")  # ZWNJ, ZWJ: needed by some scripts and emoji
_WINDOWS_NAMES = frozenset(
    ["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"]
    + [f"{dev}{n}" for dev in ("COM", "LPT") for n in [*"0123456789", "¹", "²", "³"]]
)
_DOTS = re.compile(r"\.{2,}")


class UnsafePathError(Permanent):
    """A rendered output path would leave the sink's root (e.g. through a symlink on disk)."""


def template_fields(result: Result) -> dict[str, str]:
    """The raw (uncleaned) template fields of a result; the first part names the whole."""
    first = first_part(result)
    return {
        "watch": first.watch.name,
        "date": part_date(result) or "unknown-date",
        "name": result.name,
        "conversation_id": result.conversation_id,
        "stem": PurePath(first.path.name).stem,
    }


def clean_text(value: object) -> str:
    """Printable NFC text with nothing that means anything to a file system.

    Separators and Windows-reserved characters become ``_``; line breaks and other
    whitespace become one space; control and invisible format characters (NUL, escapes,
    bidi overrides, BOM) are dropped; runs of dots collapse to one, so no fragment reads
    as a parent reference. Letters of every script are kept as they are.
    """
    text = unicodedata.normalize("NFC", str(value))
    out: list[str] = []
    for ch in text:
        category = unicodedata.category(ch)
        if ch in _RESERVED_CHARS:
            out.append("_")
        elif ch.isspace() or category in ("Zl", "Zp"):
            out.append(" ")
        elif category.startswith("C") and ch not in _KEEP_FORMAT_CHARS:
            continue  # Cc control, Cf format (bidi, BOM), Cs surrogate, Co private, Cn unassigned
        else:
            out.append(ch)
    return _DOTS.sub(".", " ".join("".join(out).split()))


def truncate_utf8(text: str, max_bytes: int) -> str:
    """At most `max_bytes` of UTF-8, never splitting a character."""
    return text.encode("utf-8")[:max_bytes].decode("utf-8", errors="ignore")


def clean_field(value: object) -> str:
    """A template field: clean text, capped at `FIELD_MAX_BYTES`."""
    return truncate_utf8(clean_text(value), FIELD_MAX_BYTES)


def clean_component(text: str) -> str:
    """One path level: clean, no leading dots (hidden files, ``..``), no trailing dots or
    spaces (Windows drops them), capped, not a Windows device name; ``_`` when empty."""
    text = clean_text(text).strip(" .")
    text = truncate_utf8(text, COMPONENT_MAX_BYTES).rstrip(" .")
    if text.split(".")[0].rstrip(" ").upper() in _WINDOWS_NAMES:
        text = truncate_utf8("_" + text, COMPONENT_MAX_BYTES)
    return text or "_"


def render_template(template: str, fields: dict[str, str]) -> list[str]:
    """The cleaned path levels of `template`: ``/`` in the template separates levels, while
    every field is confined to the level it appears in."""
    safe = {key: clean_field(value) for key, value in fields.items()}
    levels = [part for part in template.replace("\\", "/").split("/") if part.strip()]
    return [clean_component(part.format_map(safe)) for part in levels] or ["_"]


def output_dir(root: Path, template: str, fields: dict[str, str]) -> Path:
    """The resolved directory a result goes to, proven to be strictly inside `root`.

    Raises:
        UnsafePathError: see `ensure_inside`.
    """
    base = root.expanduser().resolve()
    return ensure_inside(base, base.joinpath(*render_template(template, fields)))


def ensure_inside(root: Path, path: Path) -> Path:
    """`path` resolved, after checking it is strictly inside `root` (resolved too).

    Raises:
        UnsafePathError: it is not; cleaning makes that impossible unless a symlink on
            disk inside the root points elsewhere.
    """
    base = root.expanduser().resolve()
    resolved = path.resolve()
    if resolved == base or not resolved.is_relative_to(base):
        raise UnsafePathError(
            f"refusing to write {resolved}: it is outside the files sink's folder {base}; "
            "check for symlinks there"
        )
    return resolved
