"""Sidecar files: per-recording settings in a small YAML or JSON file next to the recording.

For ``sales/call-0412.m4a`` ingestd looks for, most specific first::

    sales/call-0412.m4a.ingestd.yaml   (or .yml, .json)   this file only
    sales/call-0412.ingestd.yaml       (or .yml, .json)   every file with that stem

and reads two sections, both optional::

    parameters: {languageCode: es-ES, diarizationSpeakerCount: 3}   # Symbl parameters
    conversation: {key: weekly-sync}   # or {conversationId: "5815170693595136"}

A sidecar that cannot be used (bad YAML, an unknown key, two candidates at one level) is
the user's to fix, so it raises `Rejected` naming the sidecar file and the key.

The sidecar belongs to the recording, not to one plugin: the routing plugin reads its
parameters, the mapping plugin its conversation, and a third-party plugin may read either
(``ingestd.read_sidecar``), so it lives in the core.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ingestd.errors import Rejected

SUFFIXES = (".ingestd.yaml", ".ingestd.yml", ".ingestd.json")
"""What a sidecar's name ends with; the watch never ingests these (see the README)."""
KEYS = ("parameters", "conversation")
CONVERSATION_KEYS = ("key", "conversationId")


@dataclass(frozen=True)
class Sidecar:
    """A recording's sidecar, parsed; `path` None when there is none."""

    path: Path | None = None
    display: str = ""
    parameters: Mapping[str, Any] = field(default_factory=dict)
    conversation_key: str | None = None
    conversation_id: str | None = None

    def fail(self, problem: str, *, fix: str = "fix it") -> Rejected:
        """A `Rejected` saying which sidecar and what, and how to go on (`fix`, when the
        remedy is not in the sidecar itself)."""
        return Rejected(
            f"sidecar {self.display}: {problem}; {fix}, then `ingestd retry` the recording"
        )


def candidates(path: Path) -> list[list[Path]]:
    """The sidecar names for a recording, grouped by level, most specific level first."""
    levels = [path.name]
    if path.suffix:
        levels.append(path.stem)
    return [[path.with_name(base + suffix) for suffix in SUFFIXES] for base in levels]


def find(path: Path) -> list[Path]:
    """The existing sidecars of the most specific level that has any (normally one)."""
    for level in candidates(path):
        found = [p for p in level if p.is_file()]
        if found:
            return found
    return []


def read_sidecar(path: Path, relpath: str) -> Sidecar:
    """The sidecar of the recording at `path` (`relpath` in its watch), or an empty one.

    Raises:
        Rejected: the sidecar exists but cannot be used; the message names it and the key.
    """
    found = find(path)
    if not found:
        return Sidecar()
    folder = PurePosixPath(relpath).parent
    display = (folder / found[0].name).as_posix()
    if len(found) > 1:
        names = " and ".join(p.name for p in found)
        raise Rejected(f"{relpath} has two sidecars, {names}; keep one, then `ingestd retry`")
    empty = Sidecar(path=found[0], display=display)
    try:
        text = found[0].read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise empty.fail(f"cannot be read ({exc})") from None
    data = _parse(empty, text)
    return _interpret(empty, data)


def _parse(sidecar: Sidecar, text: str) -> Any:
    assert sidecar.path is not None
    if sidecar.path.name.endswith(".json"):
        try:
            return json.loads(text) if text.strip() else {}
        except json.JSONDecodeError as exc:
            raise sidecar.fail(f"line {exc.lineno}: not valid JSON ({exc.msg})") from None
    import yaml  # imported on first use: `import ingestd` stays light for the CLI

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise sidecar.fail(f"{where}not valid YAML ({problem})") from None


def _interpret(sidecar: Sidecar, data: Any) -> Sidecar:
    if data is None:
        return sidecar
    if not isinstance(data, Mapping):
        raise sidecar.fail(f"expected a mapping with {' and/or '.join(KEYS)}, got {show(data)}")
    for key in data:
        if key not in KEYS:
            raise sidecar.fail(f"{key}: {_unknown(key, KEYS)}")
    parameters = data.get("parameters") or {}
    if not isinstance(parameters, Mapping):
        raise sidecar.fail(f"parameters: expected a mapping, got {show(parameters)}")
    conversation = data.get("conversation") or {}
    if not isinstance(conversation, Mapping):
        raise sidecar.fail(
            f"conversation: expected a mapping with key or conversationId, got {show(conversation)}"
        )
    for key in conversation:
        if key not in CONVERSATION_KEYS:
            raise sidecar.fail(f"conversation.{key}: {_unknown(key, CONVERSATION_KEYS)}")
    if "key" in conversation and "conversationId" in conversation:
        raise sidecar.fail("conversation: give key or conversationId, not both")
    key = conversation.get("key")
    if key is not None and not (_scalar(key) and str(key).strip()):
        raise sidecar.fail(f"conversation.key: expected a non-empty string, got {show(key)}")
    cid = conversation.get("conversationId")
    if cid is not None and not (_scalar(cid) and str(cid).isdigit()):
        raise sidecar.fail(
            "conversation.conversationId: expected a Symbl conversationId, digits such as "
            f'"5815170693595136" (a jobId is not one), got {show(cid)}'
        )
    return Sidecar(
        path=sidecar.path,
        display=sidecar.display,
        parameters=dict(parameters),
        conversation_key=str(key).strip() if key is not None else None,
        conversation_id=str(cid) if cid is not None else None,
    )


def show(value: Any) -> str:
    """A value as the user wrote it in YAML: true/false/null, quoted strings, short."""
    if value is True or value is False:
        return "true" if value else "false"
    if value is None:
        return "null"
    text = repr(str.__str__(value)) if isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _scalar(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def _unknown(key: Any, known: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.5)
    if close:
        return f"unknown key; did you mean {close[0]!r}?"
    return f"unknown key; expected {', '.join(known)}"
