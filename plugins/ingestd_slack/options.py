"""The slack sink's options, validated from its ``sinks[i]`` YAML mapping.

Two ways to post, exactly one per sink::

    - type: slack                              # an incoming webhook (posts where it was made)
      webhook_url: ${SLACK_WEBHOOK_URL}
    - type: slack                              # a bot token and a channel
      token: ${SLACK_BOT_TOKEN}
      channel: C0123456789                     # or "#sales-calls"

Every problem is collected and reported at once, one per line, prefixed with the key path
the core hands us (``sinks[2].channel: required with token ...``). Credential values are
never echoed in a message, and are kept as `ingestd.config.Secret` (masked repr).
"""

from __future__ import annotations

import difflib
import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ingestd import ConfigError, Secret, unknown_keys
from ingestd_slack.blocks import SECTIONS

DEFAULT_API_BASE_URL = "https://slack.com/api/"
DEFAULT_MAX_ITEMS = 10
MAX_ITEMS_CEILING = 50
DEFAULT_TIMEOUT_SECONDS = 30.0
TOKEN_PREFIXES = ("xoxb-", "xoxp-", "xoxe.")
"""Bot tokens (``xoxb-``); user tokens and rotating tokens (``xoxe.``) work the same way."""

KEYS = (
    "webhook_url",
    "token",
    "channel",
    "api_base_url",
    "sections",
    "max_items",
    "timeout_seconds",
)
IGNORED_KEYS = ("type", "name")
"""Keys the core reads itself (it normally removes them before calling us)."""


@dataclass(frozen=True)
class SlackOptions:
    """A validated slack sink block.

    Attributes:
        webhook_url: an incoming webhook's URL (a credential), or None in bot mode.
        token: the bot token (a credential), or None in webhook mode.
        channel: the channel the bot posts to (an ID like ``C0123456789`` or ``#name``).
        api_base_url: the Web API root, for tests and Enterprise proxies (bot mode).
        sections: which message sections to show, in this order.
        max_items: most items listed per section; the rest are counted.
        timeout_seconds: per request, connect and read.
    """

    webhook_url: Secret | None = None
    token: Secret | None = None
    channel: str | None = None
    api_base_url: str = DEFAULT_API_BASE_URL
    sections: tuple[str, ...] = SECTIONS
    max_items: Mapping[str, int] = field(
        default_factory=lambda: dict.fromkeys(SECTIONS, DEFAULT_MAX_ITEMS)
    )
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS

    @property
    def mode(self) -> str:
        """``"webhook"`` or ``"bot"``."""
        return "webhook" if self.webhook_url is not None else "bot"

    @classmethod
    def parse(cls, options: Mapping[str, Any], *, key_path: str) -> SlackOptions:
        """Validate `options`; raise one `ConfigError` listing every problem.

        Args:
            options: the sink's mapping (``type`` and ``name`` are accepted and ignored).
            key_path: where the block is in the YAML, e.g. ``sinks[2]``.
        """
        problems: list[str] = []
        problems.extend(unknown_keys(options, KEYS, key_path, ignored=IGNORED_KEYS))
        webhook_url = options.get("webhook_url")
        token = options.get("token")
        channel = options.get("channel")
        if webhook_url is not None:
            problems += _url_problems(webhook_url, f"{key_path}.webhook_url", secret=True)
            if token is not None or channel is not None:
                problems.append(
                    f"{key_path}: use either webhook_url or token and channel, not both"
                )
            if "api_base_url" in options:
                problems.append(
                    f"{key_path}.api_base_url: only used with token (the webhook URL is used "
                    "as given)"
                )
        elif token is None and channel is None:
            problems.append(
                f"{key_path}: expected webhook_url (an incoming webhook) or token and channel "
                "(a bot)"
            )
        else:
            problems += _token_problems(token, f"{key_path}.token")
            problems += _channel_problems(channel, f"{key_path}.channel")
        api_base_url = options.get("api_base_url", DEFAULT_API_BASE_URL)
        if webhook_url is None:
            problems += _url_problems(api_base_url, f"{key_path}.api_base_url", secret=False)
        sections = _parse_sections(options.get("sections", list(SECTIONS)), key_path, problems)
        max_items = _parse_max_items(
            options.get("max_items", DEFAULT_MAX_ITEMS), key_path, problems
        )
        timeout = options.get("timeout_seconds", DEFAULT_TIMEOUT_SECONDS)
        if not _is_number(timeout) or not 0 < timeout <= 300:
            problems.append(
                f"{key_path}.timeout_seconds: expected a number of seconds in (0, 300], "
                f"got {_show(timeout)}"
            )
        if problems:
            raise ConfigError(problems)
        return cls(
            webhook_url=Secret(webhook_url) if webhook_url is not None else None,
            token=Secret(token) if token is not None else None,
            channel=channel,
            api_base_url=api_base_url if api_base_url.endswith("/") else api_base_url + "/",
            sections=sections,
            max_items=max_items,
            timeout_seconds=float(timeout),
        )


def _show(value: Any) -> str:
    """A value as the user wrote it: strings in double quotes, the rest as Python shows it."""
    return json.dumps(value, ensure_ascii=False) if isinstance(value, str) else repr(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _url_problems(value: Any, key_path: str, *, secret: bool) -> list[str]:
    """An http(s) URL with a host; plain http only to this machine (credentials travel in
    it or with it). A secret URL is never echoed back."""
    example = "https://hooks.slack.com/services/T…/B…/…" if secret else DEFAULT_API_BASE_URL
    shown = "" if secret else f", got {_show(value)}"
    if not isinstance(value, str) or not value.strip():
        return [f"{key_path}: expected a URL like {example}{shown}"]
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:
        return [f"{key_path}: expected a URL like {example}{shown}"]
    if parts.scheme not in ("https", "http") or not host:
        return [f"{key_path}: expected a URL like {example}{shown}"]
    if parts.scheme == "http" and not _is_loopback(host):
        return [f"{key_path}: expected https:// (plain http only to localhost){shown}"]
    if secret and parts.path.strip("/") == "":
        return [f"{key_path}: expected the full webhook URL, with its /services/… path"]
    return []


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _token_problems(value: Any, key_path: str) -> list[str]:
    if value is None:
        return [f"{key_path}: required with channel (a bot token like xoxb-…)"]
    if (
        not isinstance(value, str)
        or not value.startswith(TOKEN_PREFIXES)
        or any(char.isspace() for char in value)
    ):
        return [f"{key_path}: expected a bot token starting with xoxb- (value not shown)"]
    return []


def _channel_problems(value: Any, key_path: str) -> list[str]:
    expected = "a channel ID like C0123456789 or a name like #sales-calls"
    if value is None:
        return [f"{key_path}: required with token ({expected})"]
    if not isinstance(value, str):
        return [f"{key_path}: expected {expected}, got {_show(value)}"]
    name = value.removeprefix("#")
    if not name or len(name) > 80 or any(char.isspace() for char in name):
        return [f"{key_path}: expected {expected}, got {_show(value)}"]
    return []


def _parse_sections(value: Any, key_path: str, problems: list[str]) -> tuple[str, ...]:
    expected = ", ".join(SECTIONS)
    if not isinstance(value, list | tuple) or not value:
        problems.append(f"{key_path}.sections: expected a list of {expected}, got {_show(value)}")
        return ()
    chosen: list[str] = []
    for i, item in enumerate(value):
        if item not in SECTIONS:
            close = difflib.get_close_matches(str(item), SECTIONS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            problems.append(
                f"{key_path}.sections[{i}]: expected one of {expected}, got {_show(item)}{hint}"
            )
        elif item in chosen:
            problems.append(f"{key_path}.sections[{i}]: {_show(item)} is listed twice")
        else:
            chosen.append(item)
    return tuple(chosen)


def _parse_max_items(value: Any, key_path: str, problems: list[str]) -> dict[str, int]:
    """One number for every section, or a mapping of section -> number (others default)."""
    limits = dict.fromkeys(SECTIONS, DEFAULT_MAX_ITEMS)
    expected = f"a whole number from 1 to {MAX_ITEMS_CEILING}"
    if isinstance(value, Mapping):
        for section, number in value.items():
            path = f"{key_path}.max_items.{section}"
            if section not in SECTIONS:
                close = difflib.get_close_matches(str(section), SECTIONS, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                problems.append(f"{path}: unknown section{hint}")
            elif _is_count(number):
                limits[section] = number
            else:
                problems.append(f"{path}: expected {expected}, got {_show(number)}")
        return limits
    if not _is_count(value):
        problems.append(
            f"{key_path}.max_items: expected {expected} (or a mapping of section to number), "
            f"got {_show(value)}"
        )
        return limits
    return dict.fromkeys(SECTIONS, value)


def _is_count(value: Any) -> bool:
    return (
        isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_ITEMS_CEILING
    )
