"""Shared test configuration. The fixtures themselves live in ingestd.testing (pytest11);
the store contract fixtures (`store`, `store_place`: SQLite and PostgreSQL) in tests/stores.py.

scripts/test runs the suite on several pytest-xdist workers with ``--dist loadgroup``.
A fixture scoped wider than a test (module, package, session) is meant to be built once;
on several workers each would build its own copy (a daemon full of recordings, a Chromium,
a wheelhouse, a booted container). So every test that uses such a fixture from a test
folder is put in the xdist group of the node that fixture belongs to, and that group runs on
one worker, in order, sharing the one instance. Other tests go to whichever worker is free.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from _pytest.nodeid import NodeId

from tests import summary
from tests.stores import postgres_database, shared_postgres_store, store, store_place

__all__ = ["postgres_database", "shared_postgres_store", "store", "store_place"]

_WIDEST_FIRST = ("session", "package", "module")


def _shared_node(item: pytest.Item, everywhere: set[str]) -> str | None:
    """The nodeid whose one instance of a shared fixture `item` uses: the widest-scoped
    fixture wins. Fixtures of plugins and of this conftest (`everywhere`) are cheap enough
    to build once per worker (one PostgreSQL database each) and group nothing."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return None
    found: dict[str, str] = {}
    for name in info.names_closure:
        definitions = info.name2fixturedefs.get(name)
        if not definitions:
            continue
        definition = definitions[-1]
        if definition.scope not in _WIDEST_FIRST or definition.baseid in everywhere:
            continue
        # A module-scoped fixture from a conftest has one instance per test module.
        node = item.nodeid.split("::")[0] if definition.scope == "module" else definition.baseid
        found.setdefault(definition.scope, node)
    return next((found[scope] for scope in _WIDEST_FIRST if scope in found), None)


def _name_the_group(item: pytest.Item, group: str) -> None:
    """What xdist's loadgroup does on a worker, for pytest 9: the group goes at the end of
    the nodeid (``...::test@group``), which is all the controller sees. pytest-xdist 3.8
    still writes it to ``item._nodeid``, which pytest 9 no longer reads (the id is ``_id``),
    so without this every group would be silently ignored and each worker would build its
    own copy of the shared fixtures (four booted containers instead of one)."""
    if "@" not in item.nodeid:
        item._id = NodeId.parse(f"{item.nodeid}@{group}")


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    _longest_files_first(items)
    everywhere = {"", Path(__file__).parent.relative_to(config.rootpath).as_posix()}
    for item in items:
        if not item.get_closest_marker("xdist_group"):
            node = _shared_node(item, everywhere)
            if node:
                item.add_marker(pytest.mark.xdist_group(node))
        marks = item.iter_markers("xdist_group")
        groups = sorted(
            {str(m.args[0] if m.args else m.kwargs.get("name", "default")) for m in marks}
        )
        if groups and config.getoption("loadgroup", False):
            _name_the_group(item, "_".join(groups))


def _longest_files_first(items: list[pytest.Item]) -> None:
    """Files holding a ``slow(seconds=N)`` test run first, longest first, each file whole
    and in its own order: the workers start on the long tests, so none is left running
    alone at the end of the suite. The figures are hints from ``--durations``."""
    longest: dict[str, float] = {}
    for item in items:
        mark = item.get_closest_marker("slow")
        if mark is not None:
            path = item.nodeid.split("::", 1)[0]
            longest[path] = max(longest.get(path, 0.0), float(mark.kwargs.get("seconds", 0)))
    if longest:
        items.sort(key=lambda item: -longest.get(item.nodeid.split("::", 1)[0], -1.0))


@pytest.fixture(autouse=True)
def _structlog_as_it_was() -> Iterator[None]:
    """Commands called in-process (`commands.main([...])`) configure structlog for a terminal,
    at warning or error level; `capture_logs` keeps that level, so a later test would capture
    nothing. Each test gets back the configuration it started with."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


@pytest.hookimpl(trylast=True)  # after the folders' conftests added their sections
def pytest_sessionfinish(session: pytest.Session) -> None:
    summary.send_to_controller(session.config)


@pytest.hookimpl(optionalhook=True)  # an xdist hook: on the controller, a worker is done
def pytest_testnodedown(node: Any, error: Any) -> None:
    summary.receive_from_worker(node.config, getattr(node, "workeroutput", {}))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config):
    summary.write_all(config, terminalreporter)
