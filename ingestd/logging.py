"""Logging: structlog configured once, to stdout, for journald or a terminal.

Every event is a snake_case fact (``recording_discovered``) with its details in keys;
per-recording context (recording_id, watch, path, conversation_id) is bound with contextvars
so plugin log lines inherit it. Secrets never reach the output: values of known secrets are
registered at start-up and masked anywhere they appear, and keys that look like credentials
are masked whatever their value.

`redact` is the one function that masks secrets in text: the log processor uses it, and so
does every other way text leaves the process (errors stored in the state database, CLI
output), since an error message from a sink or an HTTP library can quote a webhook URL or a
header verbatim.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import re
import sys
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from typing import Any

import structlog

from ingestd.config import Secret

_SECRET_KEYS = re.compile(r"(secret|token|password|authorization|api[_-]?key|webhook_url)", re.I)
_MASK = "***"
_known_secrets: list[str] = []  # longest first, so a whole URL goes before its path

# Credentials recognisable by their shape, known or not: (clues, pattern, replacement). A
# pattern can only match text that holds one of its clues (compared in lower case), so
# `redact` runs it only then: most log values (states, paths, ids) hold none, and these regular
# expressions were the costliest part of every log line.
_CREDENTIAL_PATTERNS = [
    # a Slack incoming webhook or workflow URL: its path is the credential
    (("hooks.slack",), re.compile(r"(hooks\.slack(?:-gov)?\.com/)[^\s\"'<>]+"), rf"\g<1>{_MASK}"),
    # Slack tokens: xoxb- (bot), xoxp- (user), xoxa-, xoxe-, xoxr-, and xapp- app tokens
    (("xox", "xapp-"), re.compile(r"\b((?:xox[a-z]|xapp)-)[A-Za-z0-9-]+"), rf"\g<1>{_MASK}"),
    # an Authorization header's bearer token
    (("bearer",), re.compile(r"\b(Bearer\s+)[A-Za-z0-9._~+/=-]{8,}", re.I), rf"\g<1>{_MASK}"),
    # a password in a URL (scheme://user:password@host)
    (("://",), re.compile(r"(://[^/\s:@]+:)[^/\s@]+@"), rf"\g<1>{_MASK}@"),
    # credential-looking query parameters
    (
        ("=",),
        re.compile(
            r"([?&](?:access_?token|token|api_?key|secret|password|signature|webhook_?url)=)"
            r"[^&\s\"'<>]+",
            re.I,
        ),
        rf"\g<1>{_MASK}",
    ),
]


def register_secrets(values: Iterable[str]) -> None:
    """Mask these exact strings wherever they appear (in logs, stored errors, CLI output).

    For a URL (a webhook's), its path and its last path segment are masked too when they
    are long enough to be the secret part, since messages often quote only the path.
    """
    found = set(_known_secrets)
    for value in values:
        value = str.__str__(value) if isinstance(value, str) else str(value)
        found.update(f for f in _fragments(value) if len(f) >= 4)
    _known_secrets[:] = sorted(found, key=len, reverse=True)


def _fragments(value: str) -> list[str]:
    fragments = [value]
    if "://" in value:
        path = "/" + value.split("://", 1)[1].partition("/")[2]
        last = path.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
        if len(path) >= 12:
            fragments.append(path)
        if len(last) >= 12:
            fragments.append(last)
    return fragments


def register_config_secrets(config: Any) -> None:
    """Register every `Secret` in a loaded configuration (``${VAR}``/``*_file`` credentials
    and keys named like credentials), wherever it sits: symbl, sinks, plugin options."""
    register_secrets(_secrets_in(config))


def _secrets_in(value: Any) -> Iterator[str]:
    if isinstance(value, Secret):
        yield value.reveal()
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _secrets_in(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _secrets_in(item)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for field in dataclasses.fields(value):
            yield from _secrets_in(getattr(value, field.name))


_ANY_CLUE = re.compile(
    "|".join(re.escape(c) for clues, _, _ in _CREDENTIAL_PATTERNS for c in clues)
)
"""Any clue of any pattern, in lower-case text: one scan in C tells that none applies, as
for nearly every log value (a log line took 45 µs, over half of it looking for clues)."""


def redact(text: str) -> str:
    """`text` with every registered secret and every credential-shaped string masked."""
    for secret in _known_secrets:
        if secret in text:
            text = text.replace(secret, _MASK)
    lowered = text.lower()
    if _ANY_CLUE.search(lowered) is None:
        return text
    for clues, pattern, replacement in _CREDENTIAL_PATTERNS:
        if any(clue in lowered for clue in clues):
            text = pattern.sub(replacement, text)
    return text


@functools.lru_cache(maxsize=4096)
def _secret_key(key: str) -> bool:
    """Whether a key's name looks like a credential's (log keys repeat: asked once each)."""
    return _SECRET_KEYS.search(key) is not None


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: (_MASK if _secret_key(str(k)) else _scrub(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_scrub(v) for v in value)
    if isinstance(value, BaseException):
        return _scrub(repr(value))
    return value


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: mask credential-looking keys and every registered secret."""
    for key in list(event_dict):
        if _secret_key(key):
            event_dict[key] = _MASK
        else:
            event_dict[key] = _scrub(event_dict[key])
    return event_dict


_PRIORITY = {
    "debug": 7,
    "info": 6,
    "warning": 4,
    "warn": 4,
    "error": 3,
    "exception": 3,
    "critical": 2,
}


def _syslog_priority_prefix(_logger: Any, method: str, line: str) -> str:
    """``<N>`` before each line, so ``journalctl -p warning`` filters by level."""
    return f"<{_PRIORITY.get(method, 6)}>{line}"


def configure(level: str = "info", fmt: str = "auto") -> None:
    """Set up structlog once. ``fmt`` auto = console on a TTY, JSON lines otherwise."""
    use_console = fmt == "console" or (fmt == "auto" and sys.stdout.isatty())
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact_secrets,
    ]
    if use_console:
        processors.append(structlog.dev.ConsoleRenderer(colors=True))
    else:
        processors.append(structlog.processors.JSONRenderer())
        if os.environ.get("JOURNAL_STREAM"):  # stdout is journald's: tell it each level
            processors.append(_syslog_priority_prefix)
    # httpx logs every request URL at INFO; query strings can carry secrets (webhookUrl).
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(
            getattr(logging, level.upper(), logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stdout),
        cache_logger_on_first_use=False,
    )


def get_logger(**initial: Any) -> Any:
    return structlog.get_logger(**initial)
