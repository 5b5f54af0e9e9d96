"""The database sink's options, validated from its ``sinks[i]`` YAML mapping.

Every problem is collected and reported at once, one per line, prefixed with the key path
the core hands us (``sinks[1]``). The URL may hold a password, so no message, receipt or
log line ever shows it: URLs are displayed with the password replaced by ``***``, and a
URL that cannot even be parsed is never echoed back.

Short URLs map to the drivers ingestd installs and tests (psycopg 3, PyMySQL, sqlite3)::

    postgres://…  postgresql://…   ->  postgresql+psycopg://…
    mysql://…     mariadb://…      ->  mysql+pymysql://…
    sqlite:///results.db           ->  relative to the config file's folder
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL, make_url

from ingestd import ConfigError, unknown_keys

KEYS = ("url", "password", "table_prefix", "pool_size")
IGNORED_KEYS = ("type", "name")
"""Keys the core reads itself (it normally removes them before calling us)."""

DEFAULT_POOL_SIZE = 2
MAX_POOL_SIZE = 32
MAX_PREFIX_LENGTH = 24
"""Keeps every derived name (``ix_<prefix>action_items_assignee_email``) under the 63
characters PostgreSQL allows."""

_PREFIX = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

DRIVERS = {
    "sqlite": "sqlite+pysqlite",
    "postgres": "postgresql+psycopg",
    "postgresql": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mysql+pymysql",
}
"""What each backend name means; an explicit driver must be one of these values."""

SUPPORTED = {driver.partition("+")[2] for driver in DRIVERS.values()}
_SECRET_QUERY_KEY = re.compile(r"(password|secret|token)$", re.IGNORECASE)


@dataclass(frozen=True)
class DatabaseOptions:
    """A validated database sink block.

    Attributes:
        url: the SQLAlchemy URL with an explicit driver (password included, if any).
        table_prefix: prepended to every table and index name, so several sinks or
            applications can share one database.
        pool_size: connections kept open; deliveries beyond it wait for a free one.
    """

    url: URL
    table_prefix: str = ""
    pool_size: int = DEFAULT_POOL_SIZE

    @property
    def dialect(self) -> str:
        """``sqlite``, ``postgresql`` or ``mysql`` (which also means MariaDB)."""
        return self.url.get_backend_name()

    @property
    def display_url(self) -> str:
        """The URL safe to show: no password, secret-looking query values masked."""
        return display_url(self.url)

    @classmethod
    def parse(
        cls, options: Mapping[str, Any], *, key_path: str, state_dir: Path, base: Path | None
    ) -> DatabaseOptions:
        """Validate `options`; raise one `ConfigError` listing every problem.

        Args:
            options: the sink's mapping (``type`` and ``name`` are accepted and ignored).
            key_path: where the block is in the YAML, e.g. ``sinks[1]``.
            state_dir: the daemon's state folder; the default SQLite file lives there.
            base: the folder relative SQLite paths are resolved against (the config's
                folder); the working directory when None.
        """
        problems: list[str] = []
        problems.extend(unknown_keys(options, KEYS, key_path, ignored=IGNORED_KEYS))
        default = f"sqlite:///{state_dir / 'results.db'}"
        url = _parse_url(options.get("url", default), f"{key_path}.url", base, problems)
        password = options.get("password")
        if password is not None and not isinstance(password, str):
            problems.append(f"{key_path}.password: expected a string")
        elif password and url is not None:
            if url.get_backend_name() == "sqlite":
                problems.append(f"{key_path}.password: SQLite files take no password")
            url = url.set(password=str.__str__(password))
        problems.extend(_parse_prefix(options.get("table_prefix", ""), f"{key_path}.table_prefix"))
        pool_size = options.get("pool_size", DEFAULT_POOL_SIZE)
        if isinstance(pool_size, bool) or not isinstance(pool_size, int):
            problems.append(
                f"{key_path}.pool_size: expected a whole number, got {_show(pool_size)}"
            )
        elif not 1 <= pool_size <= MAX_POOL_SIZE:
            problems.append(f"{key_path}.pool_size: expected 1 to {MAX_POOL_SIZE}, got {pool_size}")
        if problems:
            raise ConfigError(problems)
        assert url is not None
        return cls(url=url, table_prefix=options.get("table_prefix", ""), pool_size=pool_size)


def display_url(url: URL) -> str:
    """`url` as text with its password hidden (and ``?password=``-like query values)."""
    query = {
        key: ("***" if _SECRET_QUERY_KEY.search(key) else value) for key, value in url.query.items()
    }
    rendered = url.set(query=query).render_as_string(hide_password=True)
    return rendered.replace("=%2A%2A%2A", "=***")


def _show(value: Any) -> str:
    """A value as the user wrote it: strings in double quotes, the rest as Python shows it."""
    return json.dumps(value, ensure_ascii=False) if isinstance(value, str) else repr(value)


def _parse_url(value: Any, key_path: str, base: Path | None, problems: list[str]) -> URL | None:
    """Parse and normalise the URL; never echo it back, since it may hold a password."""
    example = "expected a URL like postgresql://user@host/db or sqlite:///results.db"
    if not isinstance(value, str) or not value.strip():
        problems.append(f"{key_path}: {example}")
        return None
    try:
        url = make_url(str.__str__(value).strip())
        url.port  # noqa: B018 - a non-numeric port only fails when read
    except (ValueError, TypeError) as exc:  # ArgumentError is a ValueError too
        problems.append(f"{key_path}: {example} ({type(exc).__name__})")
        return None
    backend, _, driver = url.drivername.partition("+")
    if backend not in DRIVERS:
        known = ", ".join(sorted(DRIVERS))
        problems.append(f"{key_path}: unsupported database {backend!r} (known: {known})")
        return None
    if driver and driver not in SUPPORTED:
        wanted = DRIVERS[backend]
        problems.append(
            f"{key_path}: driver {driver!r} is not installed with ingestd; use "
            f"{backend}:// (which means {wanted}://)"
        )
        return None
    url = url.set(drivername=DRIVERS[backend])
    if backend == "sqlite":
        return _sqlite_url(url, key_path, base, problems)
    if not url.database:
        problems.append(f"{key_path}: expected a database name, as in {backend}://user@host/db")
    return url


def _sqlite_url(url: URL, key_path: str, base: Path | None, problems: list[str]) -> URL | None:
    """Make a SQLite file path absolute; refuse in-memory databases (results would vanish)."""
    database = url.database or ""
    if database in ("", ":memory:") or "mode=memory" in database:
        problems.append(
            f"{key_path}: an in-memory SQLite database loses every result; name a file, "
            "as in sqlite:///results.db"
        )
        return None
    path = Path(database).expanduser()
    if not path.is_absolute():
        path = (base or Path.cwd()) / path
    if path.is_dir():
        problems.append(f"{key_path}: {path} is a folder; name the database file inside it")
    return url.set(database=str(path))


def _parse_prefix(value: Any, key_path: str) -> list[str]:
    if not isinstance(value, str) or (value and not _PREFIX.fullmatch(value)):
        return [
            f"{key_path}: expected letters, digits and underscores, not starting with a "
            f'digit (like "ingestd_"), got {_show(value)}'
        ]
    if len(value) > MAX_PREFIX_LENGTH:
        return [f"{key_path}: expected at most {MAX_PREFIX_LENGTH} characters, got {len(value)}"]
    return []
