"""Logging: structlog configured once, to stdout, for journald or a terminal.

Every event is a snake_case fact (``recording_discovered``) with its details in keys;
per-recording context (recording_id, watch, path, conversation_id) is bound with contextvars
so plugin log lines inherit it. Secrets never reach the output: values of known secrets are
registered at start-up and masked anywhere they appear, and keys that look like credentials
are masked whatever their value.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any

import structlog

_SECRET_KEYS = re.compile(r"(secret|token|password|authorization|api[_-]?key|webhook_url)", re.I)
_MASK = "***"
_known_secrets: set[str] = set()


def register_secrets(values: Iterable[str]) -> None:
    """Mask these exact strings wherever they appear in a log event."""
    for value in values:
        value = str.__str__(value) if isinstance(value, str) else str(value)
        if len(value) >= 4:
            _known_secrets.add(value)


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        for secret in _known_secrets:
            if secret in value:
                value = value.replace(secret, _MASK)
        return value
    if isinstance(value, dict):
        return {k: (_MASK if _SECRET_KEYS.search(str(k)) else _scrub(v)) for k, v in value.items()}
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
        if _SECRET_KEYS.search(key):
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
