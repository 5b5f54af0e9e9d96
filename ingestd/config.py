"""The YAML configuration: load, resolve ``${VAR}`` and ``*_file`` secrets, validate, freeze.

Every problem is collected and reported at once, one per line, as
``FILE: key.path: what was expected, got what`` (unknown keys get a did-you-mean); the
daemon refuses to start with a bad config rather than guessing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class Secret(str):
    """A credential: compares and sends as its value, never shows it."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "Secret('***')"

    def reveal(self) -> str:
        return str.__str__(self)


@dataclass(frozen=True)
class AfterAction:
    """What to do with a file once its recording is finished (``after_success`` or
    ``after_rejected``; see `ingestd.disposal`). `to` is the folder for ``move``."""

    action: str = "keep"  # keep | move | delete
    to: Path | None = None


@dataclass(frozen=True)
class WatchConfig:
    """One watched folder and how its recordings are handled.

    The plugin-owned sections (`conversation`, `transcode`, `endpoint`) are mappings the
    bundled plugins validate and read; `parameters` are the API's query parameters.
    `options` holds every other key of the watch as written: keys that plugins declare
    through ``ingestd_watch_keys`` and check in ``ingestd_validate_watch``.
    """

    name: str
    path: Path
    create: bool = False  # create a missing folder at start, instead of refusing to start
    patterns: tuple[str, ...] = ("*.wav", "*.mp3", "*.mp4", "*.m4a", "*.mov", "*.flac")
    ignore: tuple[str, ...] = ()
    recursive: bool = True
    settle_seconds: float = 5.0
    polling: bool = False
    poll_interval_seconds: float = 2.0
    conversation: Mapping[str, Any] = field(default_factory=dict)
    parameters: Mapping[str, Any] = field(default_factory=dict)
    transcode: Mapping[str, Any] = field(default_factory=dict)
    endpoint: Mapping[str, Any] = field(default_factory=dict)
    after_success: AfterAction = field(default_factory=AfterAction)
    after_rejected: AfterAction = field(default_factory=AfterAction)
    options: Mapping[str, Any] = field(default_factory=dict)


DEFAULT_FETCH = ("messages", "topics", "questions", "action_items", "follow_ups", "members")


@dataclass(frozen=True)
class PipelineConfig:
    """How hard the core works and how long it keeps trying."""

    max_attempts: int = 8
    resubmit_failed_jobs: int = 2  # times a file whose Symbl job failed is submitted again
    delivery_max_attempts: int = 30  # per sink: with the default back-off, about two hours
    retry_initial_seconds: float = 2.0
    retry_max_seconds: float = 600.0
    transcode_workers: int = 2
    rescan_interval_seconds: float = 300.0
    shutdown_grace_seconds: float = 20.0
    job_limit_recovery_seconds: float = 60.0  # after a 429: one job more this often (AIMD)
    fetch: tuple[str, ...] = DEFAULT_FETCH


@dataclass(frozen=True)
class DashboardConfig:
    """The web dashboard (`ingestd.dashboard`): where it listens; without a token it is
    read-only (retry and redeliver need it)."""

    listen: str
    token: Secret | None = None
    allowed_hosts: tuple[str, ...] = ()  # names it is reached by through a reverse proxy


@dataclass(frozen=True)
class Config:
    """The whole validated configuration."""

    path: Path | None
    backends: Mapping[str, Mapping[str, Any]]
    """Every backend section by its top-level key (``symbl:``), chosen or not."""
    state_url: str
    work_dir: Path
    watches: tuple[WatchConfig, ...]
    sinks: tuple[Mapping[str, Any], ...]
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    plugins: tuple[str, ...] = ()
    disable_plugins: tuple[str, ...] = ()
    log_level: str = "info"
    log_format: str = "auto"
    metrics_listen: str | None = None
    dashboard: DashboardConfig | None = None
    backend: str = "symbl"
    """The registered backend the daemon talks to (``backend:``)."""
    state_password: str | None = field(default=None, repr=False, compare=False)
    """``state.password`` (or ``password_file``) for a PostgreSQL ``state.url``."""
    node_name: str = ""
    """``node.name``: this daemon among the nodes of one state database (default: host name)."""
    node_heartbeat_seconds: float = 5.0
    """``node.heartbeat_seconds``: how often the node says it lives and renews its claims."""
    node_lease_seconds: float = 30.0
    """``node.lease_seconds``: how long a claim outlives the node's silence (failover time)."""
    # Where each key came from, so problems found later (plugin options) name file and line
    source: str = field(default="<config>", compare=False)
    lines: Mapping[str, int] = field(default_factory=dict, compare=False, repr=False)

    @property
    def backend_options(self) -> Mapping[str, Any]:
        """The chosen backend's section: ``backend: foo`` reads the top-level ``foo:``."""
        return self.backends.get(self.backend, {})

    @property
    def symbl(self) -> Mapping[str, Any]:
        """The ``symbl:`` section, for the bundled plugin's tools and tests; the core reads
        `backend_options` only."""
        return self.backends.get("symbl", {})

    @property
    def state_path(self) -> Path | None:
        """The SQLite file behind ``state.url``, or None for another database."""
        if self.state_url.startswith("sqlite:///"):
            return Path(self.state_url.removeprefix("sqlite:///"))
        return None

    @property
    def state_dir(self) -> Path:
        return self.state_path.parent if self.state_path else self.work_dir
