"""The ``symbl:`` section of the YAML, validated into one frozen value.

Every problem is collected and reported at once, one line each, as ``symbl.key: expected
..., got ...``; unknown keys get a did-you-mean, so a misspelt ``poll_max_secnds`` is an error
at start-up rather than a silent default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ingestd import ConfigError, OptionProblems, Secret

SANDBOX = "sandbox"
"""The ``base_url`` that selects the embedded emulator instead of a real API host."""


@dataclass(frozen=True)
class SandboxSettings:
    """How the embedded sandbox is started (``symbl.sandbox``); None = the sandbox default."""

    port: int = 0
    """Loopback port to listen on; 0 picks any free one."""
    job_seconds: float = 2.0
    concurrency_limit: int | None = None
    """Defaults to `SymblOptions.max_concurrent_jobs`, so the limiter and the 429s agree."""
    token_lifetime_seconds: float | None = None


@dataclass(frozen=True)
class WebhookSettings:
    """The job-status webhook listener (``symbl.webhook``); `listen` None = polling only."""

    listen: str | None = None
    """``HOST:PORT`` to take Symbl's job-status POSTs on."""
    public_url: str | None = None
    """The URL Symbl posts to, when it is not ``http://LISTEN/symbl/job-status`` itself."""


SANDBOX_WEBHOOK = WebhookSettings(listen="127.0.0.1:0")
"""The embedded sandbox runs beside the daemon, so it can always reach a loopback listener."""


@dataclass(frozen=True)
class SymblOptions:
    """How the client reaches the API and how hard it tries. Times are seconds."""

    base_url: str
    app_id: Secret
    app_secret: Secret
    max_concurrent_jobs: int = 5
    request_timeout_seconds: float = 30.0
    upload_timeout_seconds: float = 600.0
    """Longest gap between two reads or writes of an upload, not the whole upload."""
    max_retries: int = 6
    backoff_initial_seconds: float = 0.5
    backoff_max_seconds: float = 60.0
    poll_initial_seconds: float = 0.2
    poll_max_seconds: float = 10.0
    job_timeout_seconds: float = 4 * 3600 + 1800
    """The API's 4 h duration limit plus slack: a job running longer is stuck."""
    sandbox: SandboxSettings = field(default_factory=SandboxSettings)
    webhook: WebhookSettings = field(default_factory=WebhookSettings)
    delete_after_delivery: bool = False
    """Delete each conversation at the API once every sink has it (the core acts on it)."""
    delete_failed_conversations: bool = False
    """Delete the conversation of a failed job once its replacement is submitted."""

    @property
    def is_sandbox(self) -> bool:
        return self.base_url == SANDBOX


_NUMBERS: dict[str, tuple[type, float, bool]] = {
    # key: (int or float, minimum, minimum allowed)
    "max_concurrent_jobs": (int, 1, True),
    "request_timeout_seconds": (float, 0, False),
    "upload_timeout_seconds": (float, 0, False),
    "max_retries": (int, 0, True),
    "backoff_initial_seconds": (float, 0, False),
    "backoff_max_seconds": (float, 0, False),
    "poll_initial_seconds": (float, 0, False),
    "poll_max_seconds": (float, 0, False),
    "job_timeout_seconds": (float, 0, False),
}
_SANDBOX_NUMBERS: dict[str, tuple[type, float, bool]] = {
    "port": (int, 0, True),
    "job_seconds": (float, 0, True),
    "concurrency_limit": (int, 1, True),
    "token_lifetime_seconds": (float, 0, False),
}
_SWITCHES = ("delete_after_delivery", "delete_failed_conversations")
KEYS = ("base_url", "app_id", "app_secret", "sandbox", "webhook", *_NUMBERS, *_SWITCHES)
_WEBHOOK_KEYS = ("listen", "public_url")
_ANY_ADDRESS = ("0.0.0.0", "::", "")


_Problems = OptionProblems


def _number(
    problems: _Problems,
    data: Mapping[str, Any],
    key: str,
    spec: tuple[type, float, bool],
    where: str,
) -> Any:
    kind, minimum, inclusive = spec
    value = data[key]
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if kind is int and not (is_number and float(value).is_integer()):
        problems.add(f"{where}{key}", f"expected an integer ≥ {minimum:g}, got {value!r}")
        return None
    if not is_number:
        sign = "≥" if inclusive else ">"
        problems.add(f"{where}{key}", f"expected a number {sign} {minimum:g}, got {value!r}")
        return None
    if value < minimum or (value == minimum and not inclusive):
        sign = "≥" if inclusive else ">"
        kind_name = "an integer" if kind is int else "a number"
        problems.add(f"{where}{key}", f"expected {kind_name} {sign} {minimum:g}, got {value!r}")
        return None
    return int(value) if kind is int else float(value)


def _credential(problems: _Problems, data: Mapping[str, Any], key: str, default: str | None) -> Any:
    value = data.get(key, default)
    if value == "" and default is not None:
        # The sandbox takes any credentials, so an empty one (the empty credential file
        # `ingestd install-unit` writes, read through app_secret_file) means its default.
        value = default
    if not isinstance(value, str) or not value:
        # Never echo the value: it may be a secret typed in the wrong place.
        problems.add(key, "expected a non-empty string")
        return None
    return value if isinstance(value, Secret) else Secret(value)


def _base_url(problems: _Problems, value: Any) -> str | None:
    if value == SANDBOX:
        return SANDBOX
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        problems.add("base_url", f"expected 'sandbox' or an http(s) URL, got {value!r}")
        return None
    return value.rstrip("/")


def _sandbox(problems: _Problems, value: Any) -> SandboxSettings | None:
    if not isinstance(value, Mapping):
        problems.add("sandbox", f"expected a mapping, got {type(value).__name__}")
        return None
    problems.unknown_keys(value, tuple(_SANDBOX_NUMBERS), "sandbox")
    found = {
        key: _number(problems, value, key, spec, "sandbox.")
        for key, spec in _SANDBOX_NUMBERS.items()
        if key in value
    }
    if found.get("port") is not None and found["port"] > 65535:
        problems.add("sandbox.port", f"expected a port number ≤ 65535, got {found['port']}")
        return None
    if any(v is None for v in found.values()):
        return None
    return SandboxSettings(**found)


def _webhook(problems: _Problems, value: Any, base_url: str | None) -> WebhookSettings | None:
    """``webhook: false`` turns it off; a mapping sets `listen` and maybe `public_url`."""
    if value is False or value is None:
        return WebhookSettings()
    if not isinstance(value, Mapping):
        problems.add("webhook", f"expected a mapping or false, got {type(value).__name__}")
        return None
    problems.unknown_keys(value, _WEBHOOK_KEYS, "webhook")
    listen, public_url = value.get("listen"), value.get("public_url")
    host = None
    if not isinstance(listen, str):
        problems.add("webhook.listen", f"expected HOST:PORT (required), got {listen!r}")
    else:
        host, sep, port = listen.rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        if not sep or not port.isdigit() or int(port) > 65535:
            problems.add("webhook.listen", f"expected HOST:PORT, got {listen!r}")
    if public_url is not None:
        parts = urlsplit(public_url) if isinstance(public_url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            problems.add("webhook.public_url", f"expected an http(s) URL, got {public_url!r}")
    elif host in _ANY_ADDRESS and base_url != SANDBOX:
        problems.add(
            "webhook.public_url",
            f"required when listening on {listen!r}: the URL at which Symbl reaches this host",
        )
    if problems.lines:
        return None
    return WebhookSettings(listen=listen, public_url=public_url)


def from_mapping(m: Mapping[str, Any], key_path: str = "symbl") -> SymblOptions:
    """Validate the ``symbl`` section; raise `ConfigError` listing every problem."""
    problems = _Problems(key_path)
    if not isinstance(m, Mapping):
        raise ConfigError(f"{key_path}: expected a mapping, got {type(m).__name__}")
    problems.unknown_keys(m, KEYS)
    base_url = None
    if "base_url" in m:
        base_url = _base_url(problems, m["base_url"])
    else:
        problems.add("base_url", "expected 'sandbox' or an http(s) URL (required)")
    default = SANDBOX if base_url == SANDBOX else None
    app_id = _credential(problems, m, "app_id", default)
    app_secret = _credential(problems, m, "app_secret", default)
    numbers = {k: _number(problems, m, k, spec, "") for k, spec in _NUMBERS.items() if k in m}
    for key in _SWITCHES:
        if key in m and not isinstance(m[key], bool):
            problems.add(key, f"expected true or false, got {m[key]!r}")
    switches = {k: m[k] for k in _SWITCHES if isinstance(m.get(k), bool)}
    sandbox = _sandbox(problems, m["sandbox"]) if "sandbox" in m else SandboxSettings()
    if "webhook" in m:
        webhook = _webhook(problems, m["webhook"], base_url)
    else:
        webhook = SANDBOX_WEBHOOK if base_url == SANDBOX else WebhookSettings()
    if not problems.lines:
        options = SymblOptions(
            base_url,  # type: ignore[arg-type]
            app_id,
            app_secret,
            sandbox=sandbox,  # type: ignore[arg-type]
            webhook=webhook,  # type: ignore[arg-type]
            **numbers,
            **switches,
        )
        if options.backoff_max_seconds < options.backoff_initial_seconds:
            problems.add("backoff_max_seconds", "expected ≥ backoff_initial_seconds")
        if options.poll_max_seconds < options.poll_initial_seconds:
            problems.add("poll_max_seconds", "expected ≥ poll_initial_seconds")
        if not problems.lines:
            return options
    raise ConfigError(problems.lines)
