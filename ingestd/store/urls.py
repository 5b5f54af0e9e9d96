"""What a ``state.url`` names, told without loading a database driver: the SQLite daemon
never imports psycopg (about 20 MB of a daemon's resident memory)."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

SCHEMES = ("postgresql://", "postgres://")


def is_postgres_url(target: object) -> bool:
    return isinstance(target, str) and target.startswith(SCHEMES)


def url_problem(url: str) -> str | None:
    """What is wrong with a ``state.url`` for PostgreSQL, or None (for configload)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - a non-numeric port only fails when read
    except ValueError as exc:
        return f"not a valid PostgreSQL URL ({exc})"
    if not parts.hostname:
        return "expected postgresql://USER@HOST[:PORT]/DATABASE (no host given)"
    if not parts.path.strip("/"):
        return "expected postgresql://USER@HOST[:PORT]/DATABASE (no database given)"
    return None


def display_url(url: str) -> str:
    """`url` without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))
