"""Sections for the end of the run's terminal output, also from pytest-xdist workers.

A worker's own terminal summary is never shown: `add_section` keeps the lines in the
config's stash, a worker sends them to the controller with its results (``workeroutput``),
and tests/conftest.py prints them all after the test summary.
"""

from __future__ import annotations

from collections.abc import Iterable

import pytest

SECTIONS = pytest.StashKey[list[tuple[str, list[str]]]]()
WORKER_OUTPUT_KEY = "ingestd_summary_sections"


def add_section(config: pytest.Config, title: str, lines: Iterable[str]) -> None:
    """Print `lines` under `title` when the run ends (call it by pytest_sessionfinish)."""
    config.stash.setdefault(SECTIONS, []).append((title, list(lines)))


def send_to_controller(config: pytest.Config) -> None:
    """On an xdist worker: hand the sections to the controller."""
    output = getattr(config, "workeroutput", None)
    if output is not None:
        output[WORKER_OUTPUT_KEY] = config.stash.get(SECTIONS, [])


def receive_from_worker(config: pytest.Config, workeroutput: dict) -> None:
    """On the controller: keep a finished worker's sections."""
    for title, lines in workeroutput.get(WORKER_OUTPUT_KEY, []):
        add_section(config, title, lines)


def write_all(config: pytest.Config, terminalreporter: pytest.TerminalReporter) -> None:
    for title, lines in config.stash.get(SECTIONS, []):
        terminalreporter.section(title)
        for line in lines:
            terminalreporter.write_line(line)
