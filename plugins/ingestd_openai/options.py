"""The ``openai:`` section (the backend's options), validated into one frozen value.

Every problem is reported at once as ``openai.key: expected ..., got ...``, unknown keys with
a did-you-mean. ``api_key`` may come from ``api_key_file`` or ``${VAR}`` (the core resolves
both) and is a `Secret`: it never shows in a log line or a message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ingestd import ConfigError, OptionProblems, Secret

EMULATOR = "emulator"
"""The ``base_url`` that starts the embedded emulator (`ingestd_openai.emulator`)."""
RESPONSE_FORMATS = ("verbose_json", "json")
"""``verbose_json`` brings segments with times; ``json`` (text only) is all some models give."""


@dataclass(frozen=True)
class OpenAIOptions:
    """How the backend reaches the server and what it asks for. Times are seconds."""

    base_url: str
    model: str
    api_key: Secret | None = None
    language: str | None = None
    """ISO-639-1 (``en``); None lets the server detect it."""
    prompt: str | None = None
    """Spelling and style hints; the watch's ``customVocabulary`` is appended to it."""
    response_format: str = "verbose_json"
    max_concurrent_jobs: int = 2
    """Transcriptions in flight at once: a self-hosted server's capacity."""
    max_upload_bytes: int | None = None
    """The largest file the server takes (OpenAI: 25 MB); None: no limit."""
    request_timeout_seconds: float = 60.0
    """Connecting, and the base of the answer's wait."""
    timeout_per_media_second: float = 1.0
    """The answer comes when the transcription is done: this much more per second of media."""
    max_retries: int = 4
    backoff_initial_seconds: float = 1.0
    backoff_max_seconds: float = 60.0
    emulator_port: int = 0
    emulator_answer_delay_seconds: float = 0.0

    @property
    def is_emulator(self) -> bool:
        return self.base_url == EMULATOR


_NUMBERS: dict[str, tuple[type, float]] = {
    "max_concurrent_jobs": (int, 1),
    "request_timeout_seconds": (float, 0.001),
    "timeout_per_media_second": (float, 0),
    "max_retries": (int, 0),
    "backoff_initial_seconds": (float, 0),
    "backoff_max_seconds": (float, 0),
}
_STRINGS = ("model", "language", "prompt")
_EMULATOR_KEYS = ("port", "answer_delay_seconds")
KEYS = (
    "base_url",
    "api_key",
    *_STRINGS,
    "response_format",
    "max_upload_bytes",
    *_NUMBERS,
    "emulator",
)
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmMgG]?)(i?)[bB]?\s*$")
_UNITS = {"": 1, "k": 1000, "m": 1000**2, "g": 1000**3}


def parse_size(value: Any) -> int | None:
    """Bytes from an integer or ``"25 MB"`` / ``"25MiB"`` / ``"500k"``; None if unreadable."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if value > 0 else None
    match = _SIZE.match(value) if isinstance(value, str) else None
    if match is None:
        return None
    number, unit, binary = match.groups()
    scale = (1 << {"": 0, "k": 10, "m": 20, "g": 30}[unit.lower()]) if binary else None
    size = int(float(number) * (scale or _UNITS[unit.lower()]))
    return size if size > 0 else None


def from_mapping(m: Mapping[str, Any], key_path: str = "openai") -> OpenAIOptions:
    """Validate the section; raise `ConfigError` listing every problem."""
    if not isinstance(m, Mapping):
        raise ConfigError(f"{key_path}: expected a mapping, got {type(m).__name__}")
    problems = OptionProblems(key_path)
    problems.unknown_keys(m, KEYS)
    found: dict[str, Any] = {}
    base_url = m.get("base_url")
    if base_url == EMULATOR:
        found["base_url"] = EMULATOR
    else:
        parts = urlsplit(base_url) if isinstance(base_url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            problems.add(
                "base_url",
                f"expected an http(s) URL such as https://api.openai.com/v1 (or 'emulator'), "
                f"got {base_url!r}",
            )
        else:
            found["base_url"] = base_url.rstrip("/")
    for key in _STRINGS:
        if key in m and (not isinstance(m[key], str) or not m[key].strip()):
            problems.add(key, f"expected a non-empty string, got {m[key]!r}")
        elif key in m:
            found[key] = m[key].strip()
    if "model" not in m:
        if base_url == EMULATOR:
            found["model"] = "whisper-1"
        else:
            problems.add("model", "required: the server's model name (whisper-1, a model id...)")
    if "api_key" in m:
        key = m["api_key"]
        if not isinstance(key, str) or not key:
            problems.add("api_key", "expected a non-empty string")  # never echo a secret
        else:
            found["api_key"] = key if isinstance(key, Secret) else Secret(key)
    if "response_format" in m:
        if m["response_format"] not in RESPONSE_FORMATS:
            problems.add(
                "response_format",
                f"expected one of {', '.join(RESPONSE_FORMATS)}, got {m['response_format']!r}",
            )
        else:
            found["response_format"] = m["response_format"]
    if "max_upload_bytes" in m and m["max_upload_bytes"] is not None:
        size = parse_size(m["max_upload_bytes"])
        if size is None:
            problems.add(
                "max_upload_bytes",
                f"expected a size in bytes such as 25000000 or '25 MB', got "
                f"{m['max_upload_bytes']!r}",
            )
        found["max_upload_bytes"] = size
    for key, (kind, minimum) in _NUMBERS.items():
        if key not in m:
            continue
        value = m[key]
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not number or (kind is int and not float(value).is_integer()) or value < minimum:
            what = "an integer" if kind is int else "a number"
            problems.add(key, f"expected {what} ≥ {minimum:g}, got {value!r}")
        else:
            found[key] = kind(value)
    if "emulator" in m:
        emulator = m["emulator"]
        if not isinstance(emulator, Mapping):
            problems.add("emulator", f"expected a mapping, got {type(emulator).__name__}")
        else:
            problems.unknown_keys(emulator, _EMULATOR_KEYS, "emulator")
            for key in _EMULATOR_KEYS:
                value = emulator.get(key)
                if value is None:
                    continue
                if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                    problems.add(f"emulator.{key}", f"expected a number ≥ 0, got {value!r}")
                else:
                    found[f"emulator_{key}"] = int(value) if key == "port" else float(value)
    problems.raise_if_any()
    return OpenAIOptions(**found)
