"""A daemon that has processed real files (done, failed, rejected, a mapped conversation),
with its dashboard on, shared by the browser tests of this package; and headless Chromium.

Chromium is Debian's (`scripts/browser` installs it); a missing one fails the tests loudly.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ingestd import mediagen
from ingestd.testing import DaemonProcess, IngestdEnv, drop

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TOKEN = "dashboard-test-token-0123456789"
DOCS_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@dataclass
class Site:
    env: IngestdEnv
    daemon: DaemonProcess
    sandbox: Any
    url: str
    ids: dict[str, int]  # relpath -> recording id

    def row(self, relpath: str) -> dict[str, Any]:
        return next(r for r in self.env.rows() if r["relpath"] == relpath)

    def staged(self, name: str, **kwargs: Any) -> Path:
        staging = self.env.root / "staging"
        staging.mkdir(exist_ok=True)
        kwargs.setdefault("seconds", 1)
        return mediagen.make_audio(staging / name, **kwargs)


@pytest.fixture(scope="package")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    from ingestd.sandbox import Sandbox, SandboxOptions

    root = tmp_path_factory.mktemp("dashboard")
    options = SandboxOptions(job_seconds=0.5, schedule_seconds=0.05, concurrency_limit=5)
    with Sandbox(options) as sandbox:
        env = IngestdEnv(root, sandbox.url)
        token_file = root / "dashboard.token"
        token_file.write_text(TOKEN + "\n")
        daemon = env.daemon(
            watch={
                "conversation": {"by": "folder"},
                "parameters": {"enableSpeakerDiarization": True, "diarizationSpeakerCount": 2},
            },
            sinks=[{"type": "files", "path": str(env.results), "formats": ["json", "markdown"]}],
            pipeline={"resubmit_failed_jobs": 0},
            dashboard={"listen": "127.0.0.1:0", "token_file": str(token_file)},
        )
        try:
            daemon.start()
            daemon.wait_ready()
            url = next(e["url"] for e in daemon.events() if e.get("event") == "dashboard_listening")
            staging = root / "staging"
            staging.mkdir()

            def make(name: str, frequency: int) -> Path:
                return mediagen.make_audio(staging / name, seconds=1, frequency_hz=frequency)

            # The API fails the first job: that recording ends failed (no resubmission).
            sandbox.faults.arm("fail_job", route="submit")
            drop(make("flaky-call.wav", 310), env.inbox)
            env.wait_states({"flaky-call.wav": "failed"})
            drop(make("weekly-sync.wav", 350), env.inbox)
            (staging / "garbage.wav").write_bytes(b"this is not audio at all " * 40)
            drop(staging / "garbage.wav", env.inbox)
            drop(make("part1.wav", 410), env.inbox / "board-meeting")
            env.wait_states({"board-meeting/part1.wav": "done"})
            drop(make("part2.wav", 470), env.inbox / "board-meeting")
            env.wait_states(
                {
                    "weekly-sync.wav": "done",
                    "garbage.wav": "rejected",
                    "board-meeting/part2.wav": "done",
                }
            )
            ids = {r["relpath"]: r["id"] for r in env.rows()}
            yield Site(env, daemon, sandbox, url, ids)
        finally:
            daemon.stop()
            env.stop_all()


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the dashboard's browser tests need Debian's chromium "
            f"(scripts/browser installs it: apt-get install chromium)"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context (no cookies) and page, phone-agnostic desktop size."""
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        yield page
    finally:
        context.close()


@pytest.fixture
def screenshot(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Any, str], Path]:
    """Save a page's screenshot as NAME.png, kept small for the README: in a temporary folder,
        in docs/screenshots with ``INGESTD_SCREENSHOTS=docs`` (how the README's were made), or in
    the folder that variable names."""
    wanted = os.environ.get("INGESTD_SCREENSHOTS")
    folder = DOCS_SCREENSHOTS if wanted == "docs" else Path(wanted) if wanted else None
    folder = folder or tmp_path_factory.mktemp("screenshots")

    def take(page: Any, name: str, **kwargs: Any) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.png"
        page.screenshot(path=str(path), **kwargs)
        if shutil.which("pngquant"):  # a palette PNG: a third of the size, looks the same
            subprocess.run(["pngquant", "--force", "--output", str(path), str(path)], check=True)
        size = path.stat().st_size
        assert size < 150_000, f"{path} is {size} bytes: too large for the README (pngquant?)"
        return path

    return take
