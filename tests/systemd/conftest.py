"""Fixtures of the systemd acceptance suite: the wheelhouse, and the booted container."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.systemd.wheels import build_wheelhouse


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with ingestd's wheel and its dependencies' wheels, built from this checkout."""
    folder = tmp_path_factory.mktemp("wheelhouse")
    build_wheelhouse(folder)
    return folder
