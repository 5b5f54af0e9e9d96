"""Shared test configuration. The fixtures themselves live in ingestd.testing (pytest11);
the store contract fixtures (`store`, `store_place`: SQLite and PostgreSQL) in tests/stores.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog

from tests.stores import postgres_database, shared_postgres_store, store, store_place

__all__ = ["postgres_database", "shared_postgres_store", "store", "store_place"]


@pytest.fixture(autouse=True)
def _structlog_as_it_was() -> Iterator[None]:
    """Commands called in-process (`commands.main([...])`) configure structlog for a terminal,
    at warning or error level; `capture_logs` keeps that level, so a later test would capture
    nothing. Each test gets back the configuration it started with."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)
