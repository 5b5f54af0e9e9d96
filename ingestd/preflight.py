"""``ingestd check``: everything `ingestd run` would fail on, all of it at once.

`run` refuses a bad config, a missing watch folder or a plugin's bad options; then fails,
or retries for ever, on a database it cannot use, a Slack token that is refused, a results
folder it cannot write, an ffmpeg that does not start, an API host that does not resolve or
credentials the API refuses. `check` tries each of these, prints one line per thing tried
and then every problem together, and exits 0 only when all of them passed: 78 when any
problem is in the configuration (as `run` would exit), 1 when only the world outside is.

Sinks and backends may offer ``async check() -> str``: what they proved, or an
`ingestd.errors.IngestdError` saying what is wrong in their own words.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ingestd import executables
from ingestd.config import Config
from ingestd.configload import locate
from ingestd.errors import ConfigError, IngestdError
from ingestd.folders import folder_problem, missing_folder_problems
from ingestd.logging import redact
from ingestd.registry import Sink
from ingestd.wording import plural

CHECK_TIMEOUT_SECONDS = 30.0
"""The longest one connection check may take before it counts as failed."""


@dataclass
class Report:
    """Lines as they are found; problems kept apart, those of the configuration first."""

    config_problems: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    out: Callable[[str], None] = print

    def ok(self, what: str, detail: str) -> None:
        self.out(f"{what}: {detail}")

    def config(self, problems: list[str]) -> None:
        for problem in problems:
            self.out(f"config: {problem}")
        self.config_problems.extend(problems)

    def failed(self, what: str, problem: str) -> None:
        line = f"{what}: {redact(problem)}"
        self.out(f"{line}  <- problem")
        self.problems.append(line)

    @property
    def all(self) -> list[str]:
        return [*self.config_problems, *self.problems]


def check_config(config: Config, plugins: Any, report: Report) -> tuple[Any, dict[str, Sink]]:
    """Every configuration problem `run` would refuse to start on; the backend and the sinks
    that could be built, for the connection checks."""
    from ingestd.backends import build_backend
    from ingestd.daemon import build_each_sink, validate_watches

    problems: list[str] = []
    try:
        validate_watches(config, plugins)
    except ConfigError as exc:
        problems.extend(exc.problems)
    problems.extend(locate(config, missing_folder_problems(config.watches)))
    sinks, sink_problems = build_each_sink(config, plugins)
    problems.extend(locate(config, sink_problems))
    backend = None
    try:
        backend = build_backend(config, plugins)
    except ConfigError as exc:
        problems.extend(exc.problems)
    if problems:
        report.config(problems)
    else:
        watches = plural(len(config.watches), "watch", "watches")
        report.ok(f"config: {config.path}", f"ok ({watches}, sinks: {', '.join(sinks)})")
    return backend, sinks


def check_folders(config: Config, report: Report) -> None:
    """Each watch folder readable (a missing one is a config problem, said already)."""
    for watch in config.watches:
        what = f"watch {watch.name}"
        problem = folder_problem(watch.path)
        if problem == "does not exist" and watch.create:
            report.ok(what, f"{watch.path}: will be created at start (create: true)")
        elif problem is not None:
            continue  # reported with the configuration
        elif not os.access(watch.path, os.R_OK | os.X_OK):
            report.failed(what, f"{watch.path}: cannot be read by this user")
        else:
            report.ok(what, f"{watch.path}: ok")


def check_state(config: Config, report: Report) -> None:
    """The state database reads back sane, or its folder lets `run` create it."""
    from ingestd.store import open_read_only

    path = config.state_path or config.work_dir / "state.db"
    what = "state"
    if path.exists():
        try:
            store = open_read_only(path)
            try:
                store.check()
            finally:
                store.close()
        except IngestdError as exc:
            report.failed(what, str(exc))
            return
        report.ok(what, f"{path}: ok")
        return
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        report.failed(what, f"{path}: does not exist, and {parent} does not let us create it")
        return
    report.ok(what, f"{path}: will be created at start")


def check_tools(report: Report) -> None:
    """ffmpeg and ffprobe start and say their version."""
    for tool in ("ffmpeg", "ffprobe"):
        try:
            program = executables.find(tool)
            done = subprocess.run(
                [program, "-hide_banner", "-version"],
                capture_output=True,
                text=True,
                timeout=CHECK_TIMEOUT_SECONDS,
            )
        except (IngestdError, OSError, subprocess.TimeoutExpired) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            report.failed(
                tool,
                f"cannot run it: {reason}; install {tool} or set "
                f"INGESTD_{tool.upper()} to its path",
            )
            continue
        if done.returncode != 0:
            report.failed(tool, f"{program} -version exited with {done.returncode}")
            continue
        version = " ".join((done.stdout.split("\n", 1)[0]).split()[:3])
        report.ok(tool, f"{program}: {version or 'ok'}")


async def _attempt(
    report: Report, what: str, check: Callable[[], Awaitable[Any]], *, fallback: str
) -> None:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            detail = await check()
    except TimeoutError:
        report.failed(what, f"no answer within {CHECK_TIMEOUT_SECONDS:g} s")
    except IngestdError as exc:
        report.failed(what, str(exc))
    except Exception as exc:  # a plugin's check must not end the whole check
        report.failed(what, f"{type(exc).__name__}: {exc}")
    else:
        report.ok(what, str(detail or fallback))


async def check_connections(backend: Any, sinks: dict[str, Sink], report: Report) -> None:
    """Each sink's ``check()`` and the backend's, one after the other (readable output)."""
    for name, sink in sinks.items():
        check = getattr(sink, "check", None)
        if check is None:
            report.ok(f"sink {name}", "offers no check; the first delivery will tell")
            continue
        await _attempt(report, f"sink {name}", check, fallback="ok")
    if backend is not None:
        from ingestd.backends import check_backend

        await _attempt(report, "api", lambda: check_backend(backend), fallback="ok")
    for sink in sinks.values():
        with contextlib.suppress(Exception):  # closing after a check: nothing left to say
            await sink.aclose()
    if backend is not None:
        await backend.aclose()


def run_checks(config: Config, plugins: Any, report: Report) -> None:
    """All of the above, in the order a reader expects: config, folders, tools, services."""
    backend, sinks = check_config(config, plugins, report)
    check_folders(config, report)
    check_state(config, report)
    check_tools(report)
    asyncio.run(check_connections(backend, sinks, report))
