"""Fixtures of the systemd acceptance suite: the wheelhouse, the booted container, the API.

One boot serves the whole session: the container is the machine a user installs ingestd on,
and each test drives the unit on it as an operator would. Limits of the container (settings
that cannot take effect under systemd-nspawn) are collected in `LIMITS` and printed in the
terminal summary, next to the tests that found them.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import summary
from tests.systemd.container import Container, debian_tree
from tests.systemd.wheels import build_wheelhouse

LIMITS: dict[str, str] = {}
"""Unit setting -> why it cannot be tested under nspawn here (filled by the tests)."""
TIMINGS: dict[str, float] = {}
"""Seconds spent on each stage of the setup, for the summary."""
FIGURES: dict[str, str] = {}
"""Other facts worth a line in the summary (systemd version, exposure score)."""


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with ingestd's wheel and its dependencies' wheels, built from this checkout."""
    folder = tmp_path_factory.mktemp("wheelhouse")
    started = time.monotonic()
    build_wheelhouse(folder)
    TIMINGS["wheelhouse"] = time.monotonic() - started
    return folder


@pytest.fixture(scope="session")
def share(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The host folder bind-mounted as the container's /srv: recordings in, results out."""
    folder = tmp_path_factory.mktemp("srv")
    folder.chmod(0o755)
    return folder


@pytest.fixture(scope="session")
def api() -> Iterator[Any]:
    """The Symbl sandbox on the host's loopback (the container shares the host's network).

    It lives in the test process, so it outlives every daemon restart and counts every
    upload; its own app secret is what LoadCredential must hand the daemon."""
    from ingestd.sandbox import Sandbox, SandboxOptions

    options = SandboxOptions(
        app_id="nspawn-test",
        app_secret=f"nspawn-{secrets.token_hex(8)}",
        job_seconds=0.5,
        schedule_seconds=0.05,
        concurrency_limit=5,
    )
    with Sandbox(options) as sandbox:
        yield sandbox


@pytest.fixture(scope="session")
def container(
    wheelhouse: Path, share: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Container]:
    """A booted Debian 12 with systemd 252 as PID 1; fails (never skips) when it cannot."""
    started = time.monotonic()
    tree = debian_tree()
    TIMINGS["debian tree"] = time.monotonic() - started
    log = tmp_path_factory.mktemp("nspawn") / "console.log"
    machine = Container(tree, log, binds={"/srv": share}, read_only_binds={"/mnt": wheelhouse})
    try:
        TIMINGS["boot"] = machine.boot()
        FIGURES["systemd in the container"] = machine.run("systemctl", "--version").split("\n")[0]
        yield machine
    finally:
        machine.poweroff()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """The figures, for the end of the run (sent on from an xdist worker: tests/summary.py)."""
    if not (LIMITS or TIMINGS or FIGURES):
        return
    lines = [f"{what}: {seconds:.1f} s" for what, seconds in TIMINGS.items()]
    lines += [f"{what}: {value}" for what, value in FIGURES.items()]
    lines += [f"not testable here: {setting}: {why}" for setting, why in LIMITS.items()]
    summary.add_section(session.config, "ingestd under systemd-nspawn", lines)
