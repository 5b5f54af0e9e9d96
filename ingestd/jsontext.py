"""JSON as the daemon writes and reads its own files: orjson, in C, with the standard
library's way for what orjson refuses.

The insights file of each recording is written once and read back by the delivery, the
dashboard and ``ingestd process``; `json.dumps` and `json.loads` of it were 3-4 % of the
daemon's CPU per recording in the throughput bench (issue 18), orjson about a tenth of that.
orjson refuses a lone surrogate in a string (an API can send one, escaped) and an integer
beyond 64 bits: those go the standard library's way, which writes them as they are. Files
are UTF-8 whatever the locale.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson


def dumps(data: Any) -> bytes:
    """`data` as compact UTF-8 JSON (non-string keys as strings, anything else by `str`)."""
    try:
        return orjson.dumps(data, default=str, option=orjson.OPT_NON_STR_KEYS)
    except (orjson.JSONEncodeError, TypeError):
        return json.dumps(data, default=str).encode("ascii")  # \uXXXX escapes: ASCII


def pretty(data: Any) -> str:
    """`data` as JSON indented by two spaces, non-ASCII as itself (for people to read)."""
    try:
        return orjson.dumps(
            data, default=str, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS
        ).decode()
    except (orjson.JSONEncodeError, TypeError):
        return json.dumps(data, indent=2, ensure_ascii=False, default=str)


def loads(data: bytes | str) -> Any:
    """Parse JSON text; `json.JSONDecodeError` (a ValueError) when it is not JSON."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)  # a lone surrogate's escape; or raises as json does


def read(path: str | Path) -> Any:
    """The JSON in the file at `path` (UTF-8); OSError or ValueError as it fails."""
    with open(path, "rb") as handle:
        return loads(handle.read())
