"""Reliability tests run the real daemon against the in-process sandbox (ingestd.testing)."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(autouse=True)
def _quick_jobs(sandbox: Any) -> None:
    """Short sandbox jobs keep the suite within minutes; tests needing longer set their own."""
    sandbox.set_options({"job_seconds": 0.2, "schedule_seconds": 0.02})
