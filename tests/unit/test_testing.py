"""ingestd.testing as a plugin author meets it: a test folder outside this repository gets
the fixtures (the pytest11 entry point) and the builders, and can tune the sandbox."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CONFTEST = """
import pytest

@pytest.fixture
def sandbox_options():
    return {"job_seconds": 0.1, "schedule_seconds": 0.05}
"""

TESTS = """
import asyncio

from ingestd.testing import sample_insights, sample_result


class ListSink:
    def __init__(self):
        self.delivered = []

    async def deliver(self, result):
        self.delivered.append((result.name, len(result.parts), len(result.insights.topics)))


def test_builders_make_what_a_sink_receives():
    sink = ListSink()
    result = sample_result(sample_insights(topics=[]), parts=2)
    asyncio.run(sink.deliver(result))
    assert sink.delivered == [("Weekly sync", 2, 0)]
    assert [p.relpath for p in result.parts] == ["part0.wav", "part1.wav"]
    assert [m["from"]["name"] for m in result.insights.messages] == ["Alice", "Bob"]


def test_sandboxes_take_the_folder_options(sandbox, make_sandbox):
    other = make_sandbox(concurrency_limit=1)
    assert sandbox.options.job_seconds == 0.1 == other.options.job_seconds
    assert other.options.concurrency_limit == 1 and other.url != sandbox.url
"""


def test_a_plugin_authors_tests_get_the_fixtures_and_builders(tmp_path: Path) -> None:
    """Run pytest in a fresh folder, as a third-party plugin's suite would be run."""
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_my_sink.py").write_text(TESTS)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 passed" in run.stdout
