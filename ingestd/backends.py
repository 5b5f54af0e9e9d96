"""Choosing the API backend: the ``backend:`` key, its section, and the optional parts of
the `ingestd.registry.Backend` contract the core asks for by name.

``backend: NAME`` (default ``symbl``) selects a backend type registered through
``ingestd_register_backends``; its options are the top-level section of the same name
(``symbl:`` for symbl, ``foo:`` for a plugin's ``foo``). A section of a backend that is
registered but not chosen is allowed (switching back and forth is one line); any other
top-level key is an unknown key with a did-you-mean.

The optional parts, each looked up with ``getattr`` so that a backend implements only what
its service can do, are listed in `ingestd.registry.Backend`.
"""

from __future__ import annotations

from typing import Any

from ingestd.config import Config
from ingestd.configload import TOP_KEYS, locate
from ingestd.errors import ConfigError
from ingestd.options import unknown_key_message
from ingestd.registry import Backend, BackendFactory, Registry

DEFAULT_JOB_LIMIT = 5
"""Jobs in flight at once for a backend that does not say (``max_concurrent_jobs``)."""


def check_sections(config: Config, backends: Registry[BackendFactory]) -> list[str]:
    """Problems with ``backend:`` and the backend sections, as ``key: message`` lines."""
    names = backends.names()
    problems = []
    if config.backend not in names:
        problems.append(
            f"backend: unknown backend {config.backend!r}; "
            + unknown_key_message(config.backend, names).removeprefix("unknown key; ")
        )
    for section in config.backends:
        if section not in names:
            problems.append(f"{section}: {unknown_key_message(section, (*TOP_KEYS, *names))}")
    return problems


def validate_backend_choice(config: Config, plugins: Any) -> None:
    """Raise `ConfigError`, with file and line, for an unknown ``backend:`` or section."""
    problems = check_sections(config, plugins.backends)
    if problems:
        raise ConfigError(locate(config, problems))


def build_backend(config: Config, plugins: Any) -> Backend:
    """The chosen backend, made by its factory from its section; `ConfigError` with file and
    line for an unknown name or section, or a bad option (the factory's own check)."""
    validate_backend_choice(config, plugins)
    factory = plugins.backends.get(config.backend, key_path="backend")
    try:
        return factory(config.backend_options, config.state_dir)
    except ConfigError as exc:
        raise ConfigError(locate(config, exc.problems)) from None


def job_limit(backend: Backend) -> int:
    """How many jobs may be in flight at once (``backend.max_concurrent_jobs``)."""
    limit = getattr(backend, "max_concurrent_jobs", None)
    return int(limit) if isinstance(limit, int) and limit > 0 else DEFAULT_JOB_LIMIT


async def check_backend(backend: Backend) -> str:
    """What ``ingestd check`` says about the API: the backend's own ``check()`` answer, or
    that it offers none. A problem is raised by the backend, in its own words (host
    unknown, credentials refused, ...)."""
    check = getattr(backend, "check", None)
    if check is None:
        return f"{backend.name}: offers no check; the first upload will tell"
    return str(await check())
