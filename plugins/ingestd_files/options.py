"""The files sink's options, validated from its ``sinks[i]`` YAML mapping.

Every problem is collected and reported at once, one per line, prefixed with the key path
the core hands us (``sinks[0]``), so the user can fix the whole block in one go::

    sinks[0].formats[1]: expected one of json, markdown, srt, vtt, txt, got "pdf"
"""

from __future__ import annotations

import difflib
import json
import os
import string
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ingestd import ConfigError, unknown_keys

FORMATS = ("json", "markdown", "srt", "vtt", "txt")
"""Every output format, in the order files are written."""

DEFAULT_FORMATS = ("json", "markdown")
DEFAULT_TEMPLATE = "{name}-{conversation_id}"

TEMPLATE_FIELDS = ("watch", "date", "name", "conversation_id", "stem")
"""Fields a template may use; see `ingestd_files.paths.template_fields`."""

KEYS = ("path", "formats", "template")
IGNORED_KEYS = ("type", "name")
"""Keys the core reads itself (it normally removes them before calling us)."""


@dataclass(frozen=True)
class FilesOptions:
    """A validated files sink block.

    Attributes:
        path: the root directory; every file written is inside it. Created on first use.
        formats: which files to write, deduplicated, in `FORMATS` order.
        template: the output directory under `path`, ``/`` separating levels.
    """

    path: Path
    formats: tuple[str, ...] = DEFAULT_FORMATS
    template: str = DEFAULT_TEMPLATE

    @classmethod
    def parse(
        cls, options: Mapping[str, Any], *, key_path: str, base: Path | None = None
    ) -> FilesOptions:
        """Validate `options`; raise one `ConfigError` listing every problem.

        Args:
            options: the sink's mapping (``type`` and ``name`` are accepted and ignored).
            key_path: where the block is in the YAML, e.g. ``sinks[0]``.
            base: the folder relative paths are resolved against (the config's folder);
                the working directory when None.
        """
        problems: list[str] = []
        problems.extend(unknown_keys(options, KEYS, key_path, ignored=IGNORED_KEYS))
        path = _parse_path(options.get("path"), f"{key_path}.path", base, problems)
        formats = _parse_formats(options.get("formats", list(DEFAULT_FORMATS)), key_path, problems)
        template = options.get("template", DEFAULT_TEMPLATE)
        problems.extend(template_problems(template, f"{key_path}.template"))
        if problems:
            raise ConfigError(problems)
        assert path is not None
        return cls(path=path, formats=formats, template=template)


def _show(value: Any) -> str:
    """A value as the user wrote it: strings in double quotes, the rest as Python shows it."""
    return json.dumps(value, ensure_ascii=False) if isinstance(value, str) else repr(value)


def _parse_path(value: Any, key_path: str, base: Path | None, problems: list[str]) -> Path | None:
    if value is None:
        problems.append(f"{key_path}: required (the folder to write results into)")
        return None
    if not isinstance(value, str | os.PathLike) or not str(value).strip():
        problems.append(f"{key_path}: expected a folder path, got {_show(value)}")
        return None
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = (base or Path.cwd()) / path
    if path.exists() and not path.is_dir():
        problems.append(f"{key_path}: {path} exists and is not a folder")
    return path


def _parse_formats(value: Any, key_path: str, problems: list[str]) -> tuple[str, ...]:
    expected = ", ".join(FORMATS)
    if not isinstance(value, list | tuple):
        problems.append(f"{key_path}.formats: expected a list of {expected}, got {_show(value)}")
        return ()
    if not value:
        problems.append(f"{key_path}.formats: expected at least one of {expected}, got []")
    chosen: set[str] = set()
    for i, item in enumerate(value):
        if item in FORMATS:
            chosen.add(item)
        else:
            problems.append(
                f"{key_path}.formats[{i}]: expected one of {expected}, got {_show(item)}"
            )
    return tuple(f for f in FORMATS if f in chosen)


def template_problems(template: Any, key_path: str) -> list[str]:
    """What is wrong with an output template (empty when nothing).

    Fields are plain names only: no positional ``{}``, no attribute or index access
    (``{name.__class__}`` would read object internals), no conversion or format spec.
    Literal ``..`` levels and absolute templates are refused here, though rendering would
    neutralise them anyway, so the user learns the template does not mean what it says.
    """
    if not isinstance(template, str) or not template.strip():
        return [f"{key_path}: expected a non-empty string like {_show(DEFAULT_TEMPLATE)}"]
    problems: list[str] = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        return [f"{key_path}: {exc} in {_show(template)}"]
    for _literal, field, spec, conversion in parsed:
        if field is None:
            continue
        if field not in TEMPLATE_FIELDS:
            close = difflib.get_close_matches(field, TEMPLATE_FIELDS, n=1)
            hint = f"; did you mean {{{close[0]}}}?" if close else ""
            known = ", ".join(f"{{{f}}}" for f in TEMPLATE_FIELDS)
            problems.append(f"{key_path}: unknown field {{{field}}}{hint} (known: {known})")
        elif spec or conversion:
            problems.append(f"{key_path}: field {{{field}}} takes no conversion or format spec")
    if template.startswith(("/", "\\", "~")):
        problems.append(
            f"{key_path}: expected a path relative to the sink's path, got {_show(template)}"
        )
    elif any(part in (".", "..") for part in template.replace("\\", "/").split("/")):
        problems.append(f"{key_path}: '.' and '..' levels are not allowed, got {_show(template)}")
    return problems
