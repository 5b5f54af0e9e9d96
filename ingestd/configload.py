"""Reading the YAML: environment and credential-file substitution, every problem collected
with its line number, then frozen into `ingestd.config.Config`.

A message names the file, the line, the key path and what was expected::

    ingestd.yaml:14: watch[1].settle_seconds: expected a number >= 0, got 'five'
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from ingestd.config import (
    DEFAULT_FETCH,
    Config,
    DashboardConfig,
    PipelineConfig,
    Secret,
    WatchConfig,
)
from ingestd.disposal import ignore_move_targets, parse_after
from ingestd.errors import ConfigError
from ingestd.model import INSIGHT_KINDS
from ingestd.options import unknown_key_message

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_SECRET_KEY = re.compile(r"(secret|token|password|webhook_url|api_key)$", re.IGNORECASE)

DEFAULT_BACKEND = "symbl"
TOP_KEYS = (
    "backend", "state", "watch", "sinks", "pipeline", "plugins", "disable_plugins", "logging",
    "metrics", "parameters", "dashboard", "node",
)  # fmt: skip
"""The core's own top-level keys. Any other top-level key is the section of a backend
(``symbl:``), checked against the registered backends once plugins are loaded."""
WATCH_KEYS = (
    "name",
    "path",
    "create",
    "patterns",
    "ignore",
    "recursive",
    "settle_seconds",
    "polling",
    "poll_interval_seconds",
    "conversation",
    "parameters",
    "transcode",
    "endpoint",
    "after_success",
    "after_rejected",
)
DEFAULT_IGNORE = (  # matched against each folder and the name (ingestd.watch.ignored)
    "*.part", "*.partial", "*.tmp", "*.crdownload", "~$*", ".*", "*~", "*.swp",
    "*.ingestd.yaml", "*.ingestd.yml", "*.ingestd.json",  # sidecar files
)  # fmt: skip


class _Problems:
    """Collects problems with line numbers; raises them all at the end."""

    def __init__(self, source: str, lines: dict[str, int]) -> None:
        self.source = source
        self.lines = lines
        self.items: list[str] = []

    def add(self, key_path: str, message: str, *, line_path: str | None = None) -> None:
        line, path = None, line_path or key_path
        while line is None and path:  # a missing key: point at its parent
            line = self.lines.get(path)
            parent = re.sub(r"(\.[^.\[]*|\[\d+\])$", "", path)
            path = "" if parent == path else parent
        where = f"{self.source}:{line}" if line else self.source
        self.items.append(f"{where}: {key_path}: {message}")

    def unknown_keys(self, data: Mapping[str, Any], allowed: tuple[str, ...], prefix: str) -> None:
        for key in data:
            if key not in allowed:
                self.add(_join(prefix, str(key)), unknown_key_message(key, allowed))

    def raise_if_any(self) -> None:
        if self.items:
            raise ConfigError(self.items)


def _join(prefix: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{prefix}[{key}]"
    return f"{prefix}.{key}" if prefix else key


def _line_index(node: yaml.Node | None, prefix: str = "") -> dict[str, int]:
    """Key path -> 1-based line, from PyYAML's node tree, for error messages."""
    index: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            path = _join(prefix, str(key_node.value))
            index[path] = key_node.start_mark.line + 1
            index.update(_line_index(value_node, path))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            path = _join(prefix, i)
            index[path] = item.start_mark.line + 1
            index.update(_line_index(item, path))
    return index


def _resolve(value: Any, key_path: str, problems: _Problems, base: Path) -> Any:
    """Substitute ``${VAR}`` (``${VAR:-default}``), read ``*_file`` keys, wrap secrets."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            key = str(key)
            path = _join(key_path, key)
            item = _resolve(item, path, problems, base)
            if key.endswith("_file") and isinstance(item, str):
                target = key.removesuffix("_file")
                file = (base / item).expanduser()
                try:
                    item = file.read_text().strip()
                except OSError as exc:
                    problems.add(path, f"cannot read credential file {file}: {exc.strerror}")
                    continue
                key = target
            if _SECRET_KEY.search(key) and isinstance(item, str):
                item = Secret(item)
            out[key] = item
        return out
    if isinstance(value, list):
        return [_resolve(v, _join(key_path, i), problems, base) for i, v in enumerate(value)]
    if isinstance(value, str):

        def env(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in os.environ:
                return os.environ[name]
            if default is not None:
                return default
            problems.add(key_path, f"environment variable {name} is not set")
            return ""

        return _ENV.sub(env, value)
    return value


def _state_url(
    problems: _Problems, state: Mapping[str, Any], base: Path
) -> tuple[str, str | None, Path]:
    """``state.url``: ``sqlite:///PATH`` (the default) or ``postgresql://USER@HOST/DB``
    (password from ``state.password``/``password_file``); with the default work_dir."""
    from ingestd.store.urls import is_postgres_url, url_problem

    url = state.get("url", "sqlite:///state/state.db")
    password = state.get("password")
    if is_postgres_url(url):
        problem = url_problem(url)
        if problem:
            problems.add("state.url", problem)
        return url, password, base / "state" / "work"
    if password is not None:
        problems.add("state.password", "only a postgresql:// state.url takes a password")
    if not isinstance(url, str) or not url.startswith("sqlite:///"):
        problems.add(
            "state.url", "expected sqlite:///PATH or postgresql://USER@HOST[:PORT]/DATABASE"
        )
        url = "sqlite:///state/state.db"
    db_path = (base / url.removeprefix("sqlite:///")).expanduser().resolve()
    return f"sqlite:///{db_path}", None, db_path.parent / "work"


def _node(problems: _Problems, node: Mapping[str, Any]) -> tuple[str, float, float]:
    """``node: {name, heartbeat_seconds, lease_seconds}``: this daemon among the nodes of
    one state database, and how long its claims outlive its silence."""
    from ingestd.nodes import HEARTBEAT_SECONDS, LEASE_SECONDS, default_node_name

    problems.unknown_keys(node, ("name", "heartbeat_seconds", "lease_seconds"), "node")
    name = node.get("name", default_node_name())
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}", name):
        problems.add("node.name", "expected 1-63 letters, digits, '.', '_' or '-'")
        name = default_node_name()
    heartbeat = _number(problems, node, "heartbeat_seconds", "node", HEARTBEAT_SECONDS, minimum=0.1)
    lease = _number(problems, node, "lease_seconds", "node", LEASE_SECONDS, minimum=0.5)
    if lease < 2 * heartbeat:
        problems.add(
            "node.lease_seconds",
            f"expected at least twice heartbeat_seconds ({heartbeat}), got {lease}: a lease "
            f"must outlive a late heartbeat, or a healthy node loses its work",
        )
    return name, float(heartbeat), float(lease)


def _number(
    problems: _Problems,
    data: Mapping[str, Any],
    key: str,
    prefix: str,
    default: float,
    *,
    minimum: float = 0,
    integer: bool = False,
) -> Any:
    value = data.get(key, default)
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or value < minimum:
        what = "a whole number" if integer else "a number"
        problems.add(_join(prefix, key), f"expected {what} >= {minimum}, got {value!r}")
        return default
    return value


def _bool(
    problems: _Problems, data: Mapping[str, Any], key: str, prefix: str, default: bool
) -> bool:
    value = data.get(key, default)
    if not isinstance(value, bool):
        problems.add(_join(prefix, key), f"expected true or false, got {value!r}")
        return default
    return value


def _strings(
    problems: _Problems, data: Mapping[str, Any], key: str, prefix: str, default: tuple[str, ...]
) -> tuple[str, ...]:
    value = data.get(key, list(default))
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        problems.add(_join(prefix, key), f"expected a list of strings, got {value!r}")
        return default
    return tuple(value)


def _mapping(problems: _Problems, data: Mapping[str, Any], key: str, prefix: str) -> dict:
    value = data.get(key, {})
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.add(_join(prefix, key), f"expected a mapping, got {value!r}")
        return {}
    return value


def _watch(
    problems: _Problems, i: int, data: Any, base: Path, names: set[str], defaults: dict[str, Any]
) -> WatchConfig | None:
    prefix = f"watch[{i}]"
    if not isinstance(data, dict):
        problems.add(prefix, f"expected a mapping with at least 'path', got {data!r}")
        return None
    # Other keys may belong to plugins (ingestd_watch_keys): checked once they are loaded.
    options = {str(k): v for k, v in data.items() if k not in WATCH_KEYS}
    raw_path = data.get("path")
    if not isinstance(raw_path, str) or not raw_path:
        problems.add(_join(prefix, "path"), "expected the folder to watch")
        return None
    path = (base / raw_path).expanduser().resolve()
    name = data.get("name", path.name or str(path))
    if not isinstance(name, str) or not name:
        problems.add(_join(prefix, "name"), f"expected a non-empty string, got {name!r}")
        name = str(path)
    if name in names:
        problems.add(_join(prefix, "name"), f"watch name {name!r} is used twice; set a unique name")
    names.add(name)
    ignore = _strings(problems, data, "ignore", prefix, ())
    return WatchConfig(
        name=name,
        path=path,
        create=_bool(problems, data, "create", prefix, False),
        patterns=_strings(problems, data, "patterns", prefix, WatchConfig.patterns),
        ignore=DEFAULT_IGNORE + ignore,
        recursive=_bool(problems, data, "recursive", prefix, True),
        settle_seconds=_number(problems, data, "settle_seconds", prefix, 5.0),
        polling=_bool(problems, data, "polling", prefix, False),
        poll_interval_seconds=_number(
            problems, data, "poll_interval_seconds", prefix, 2.0, minimum=0.1
        ),
        conversation=_mapping(problems, data, "conversation", prefix),
        parameters={**defaults, **_mapping(problems, data, "parameters", prefix)},
        transcode=_mapping(problems, data, "transcode", prefix),
        endpoint=_mapping(problems, data, "endpoint", prefix),
        **parse_after(data, prefix, base, path, problems.add),
        options=options,
    )


_PIPELINE_NUMBERS = (  # key, minimum, whole number
    ("max_attempts", 1, True),
    ("resubmit_failed_jobs", 0, True),
    ("delivery_max_attempts", 1, True),
    ("retry_initial_seconds", 0, False),
    ("retry_max_seconds", 0, False),
    ("transcode_workers", 1, True),
    ("rescan_interval_seconds", 1, False),
    ("shutdown_grace_seconds", 0, False),
    ("job_limit_recovery_seconds", 0.1, False),
)


def _pipeline(problems: _Problems, data: Mapping[str, Any]) -> PipelineConfig:
    prefix = "pipeline"
    problems.unknown_keys(data, tuple(PipelineConfig.__dataclass_fields__), prefix)
    fetch = _strings(problems, data, "fetch", prefix, DEFAULT_FETCH)
    for j, kind in enumerate(fetch):
        if kind not in INSIGHT_KINDS:
            problems.add(
                f"pipeline.fetch[{j}]", f"expected one of {', '.join(INSIGHT_KINDS)}, got {kind!r}"
            )
    numbers: dict[str, Any] = {}
    defaults = PipelineConfig()
    for key, minimum, integer in _PIPELINE_NUMBERS:
        numbers[key] = _number(
            problems, data, key, prefix, getattr(defaults, key), minimum=minimum, integer=integer
        )
    return PipelineConfig(fetch=fetch, **numbers)


def _unique_sink_name(
    problems: _Problems, sink: Mapping[str, Any], i: int, named: dict[str, int]
) -> None:
    """Two sinks with one explicit ``name`` would share their outbox deliveries: refuse it,
    naming both lines (unnamed sinks of one type are numbered instead, `daemon.sink_names`)."""
    if "name" not in sink:
        return
    name = str(sink["name"])
    if name in named:
        first = named[name]
        line = problems.lines.get(f"sinks[{first}].name") or problems.lines.get(f"sinks[{first}]")
        where = f"{problems.source}:{line}" if line else problems.source
        problems.add(
            f"sinks[{i}].name",
            f"sink name {name!r} is already taken by sinks[{first}] ({where});"
            " give each sink a name of its own",
        )
    else:
        named[name] = i


def _dashboard(problems: _Problems, data: Mapping[str, Any]) -> DashboardConfig | None:
    """``dashboard: {listen: HOST:PORT | PORT, token_file: FILE, allowed_hosts: [NAME]}``; a
    bare port is loopback."""
    raw = _mapping(problems, data, "dashboard", "")
    if not raw:
        return None
    keys = ("listen", "token", "allowed_hosts")
    problems.unknown_keys(raw, keys, "dashboard")  # token_file arrives as token
    listen = str(raw.get("listen", ""))
    if listen.isdigit():
        listen = f"127.0.0.1:{listen}"
    if not re.fullmatch(r"[\w.:\[\]-]+:\d{1,5}", listen):
        problems.add("dashboard.listen", f"expected HOST:PORT or PORT, got {raw.get('listen')!r}")
        return None
    token = raw.get("token")
    if token is not None and (not isinstance(token, str) or len(token.strip()) < 16):
        problems.add("dashboard.token", "expected a token of at least 16 characters")
        return None
    hosts = _strings(problems, raw, "allowed_hosts", "dashboard", ())
    return DashboardConfig(
        listen=listen,
        token=Secret(token.strip()) if token else None,
        allowed_hosts=tuple(h.lower() for h in hosts),
    )


def _backends(problems: _Problems, data: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """``backend:`` and the backend sections: every other top-level key that holds a mapping.

    Whether each section names a registered backend is known only once plugins are loaded
    (`ingestd.backends.check_sections`); what is not a mapping cannot be one, so it is an
    unknown key now.
    """
    backend = data.get("backend", DEFAULT_BACKEND)
    if not isinstance(backend, str) or not backend.strip():
        problems.add("backend", f"expected the name of a backend (e.g. symbl), got {backend!r}")
        backend = DEFAULT_BACKEND
    sections: dict[str, Any] = {}
    for key, value in data.items():
        if key in TOP_KEYS:
            continue
        if isinstance(value, dict) or (value is None and key == backend):
            sections[key] = value or {}
        elif key == backend:
            problems.add(key, f"expected a mapping (the {key} backend's options), got {value!r}")
        else:
            problems.add(key, unknown_key_message(key, (*TOP_KEYS, backend)))
    return backend, sections


def parse_config(text: str, *, source: str = "<config>", base: Path | None = None) -> Config:
    """Validate YAML text into a Config; raise ConfigError listing every problem."""
    base = base or Path.cwd()
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: not valid YAML: {problem}") from None
    problems = _Problems(source, _line_index(node))
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{source}: expected a mapping at the top level, got {type(raw).__name__}"
        )
    data = _resolve(raw, "", problems, base)
    backend, backends = _backends(problems, data)

    state = _mapping(problems, data, "state", "")
    problems.unknown_keys(state, ("url", "work_dir", "password"), "state")
    state_url, state_password, default_work = _state_url(problems, state, base)
    work_dir = (base / str(state.get("work_dir", default_work))).expanduser().resolve()

    watches_raw = data.get("watch", [])
    if not isinstance(watches_raw, list) or not watches_raw:
        problems.add("watch", "expected a list of folders to watch (at least one)")
        watches_raw = []
    names: set[str] = set()
    defaults = _mapping(problems, data, "parameters", "")  # global defaults under each watch's
    watches = [_watch(problems, i, w, base, names, defaults) for i, w in enumerate(watches_raw)]
    watches = ignore_move_targets([w for w in watches if w is not None])

    sinks_raw = data.get("sinks", [])
    sinks: list[dict[str, Any]] = []
    if not isinstance(sinks_raw, list):
        problems.add("sinks", f"expected a list of sinks, got {sinks_raw!r}")
        sinks_raw = []
    named: dict[str, int] = {}  # explicit sink name -> index of the sink that has it
    for i, sink in enumerate(sinks_raw):
        if not isinstance(sink, dict) or not isinstance(sink.get("type"), str):
            problems.add(f"sinks[{i}]", "expected a mapping with a 'type' (e.g. files)")
            continue
        _unique_sink_name(problems, sink, i, named)
        sink = dict(sink)
        if isinstance(sink.get("path"), str):
            sink["path"] = str((base / sink["path"]).expanduser().resolve())
        sinks.append(sink)

    logging_raw = _mapping(problems, data, "logging", "")
    problems.unknown_keys(logging_raw, ("level", "format"), "logging")
    level = str(logging_raw.get("level", "info")).lower()
    if level not in ("debug", "info", "warning", "error"):
        problems.add("logging.level", f"expected debug, info, warning or error, got {level!r}")
    log_format = str(logging_raw.get("format", "auto")).lower()
    if log_format not in ("auto", "json", "console"):
        problems.add("logging.format", f"expected auto, json or console, got {log_format!r}")

    metrics = _mapping(problems, data, "metrics", "")
    problems.unknown_keys(metrics, ("listen",), "metrics")
    metrics_listen = metrics.get("listen")
    if metrics_listen is not None and not re.fullmatch(
        r"[\w.:\[\]-]+:\d{1,5}", str(metrics_listen)
    ):
        problems.add("metrics.listen", f"expected HOST:PORT, got {metrics_listen!r}")

    dashboard = _dashboard(problems, data)
    plugins = _strings(problems, data, "plugins", "", ())
    resolved_plugins = tuple(str((base / p).resolve()) if p.endswith(".py") else p for p in plugins)
    pipeline = _pipeline(problems, _mapping(problems, data, "pipeline", ""))
    node_name, heartbeat, lease = _node(problems, _mapping(problems, data, "node", ""))
    problems.raise_if_any()
    return Config(
        path=None,
        backend=backend,
        backends=backends,
        state_url=state_url,
        state_password=state_password,
        node_name=node_name,
        node_heartbeat_seconds=heartbeat,
        node_lease_seconds=lease,
        work_dir=work_dir,
        watches=tuple(w for w in watches if w is not None),
        sinks=tuple(sinks),
        pipeline=pipeline,
        plugins=resolved_plugins,
        disable_plugins=_strings(problems, data, "disable_plugins", "", ()),
        log_level=level,
        log_format=log_format,
        metrics_listen=str(metrics_listen) if metrics_listen else None,
        dashboard=dashboard,
        source=source,
        lines=problems.lines,
    )


def unknown_watch_keys(config: Config, claimed: set[str]) -> list[str]:
    """``watch[i].key: unknown key; did you mean ...`` for each key of a watch that is neither
    the core's nor claimed by a loaded plugin (``ingestd_watch_keys``), with its line."""
    known = (*WATCH_KEYS, *sorted(claimed))
    located = _Problems(config.source, dict(config.lines))
    for i, watch in enumerate(config.watches):
        located.unknown_keys(
            {k: None for k in watch.options if k not in claimed}, known, f"watch[{i}]"
        )
    return located.items


def locate(config: Config, problems: list[str]) -> list[str]:
    """Prefix problems found after loading (``key.path: message``, from plugins' option checks)
    with the file and line of that key, like the loader's own; ``watch[NAME]`` is found by name.
    """
    names = {w.name: i for i, w in enumerate(config.watches)}
    located = _Problems(config.source, dict(config.lines))
    for problem in problems:
        key_path, sep, message = problem.partition(": ")
        watch = re.match(r"watch\[([^\]]*)\]", key_path)
        if watch and watch.group(1) in names:  # the line of watch[i], the name in the message
            line_path = f"watch[{names[watch.group(1)]}]" + key_path[watch.end() :]
            located.add(key_path, message, line_path=line_path)
        elif sep and " " not in key_path and not problem.startswith(f"{config.source}:"):
            located.add(key_path, message)
        else:  # not about a key, or located already
            located.items.append(problem)
    return located.items


def load_config(path: str | Path, *, reader: Callable[[Path], str] | None = None) -> Config:
    """Read and validate a config file; relative paths in it are relative to its folder."""
    path = Path(path).expanduser().resolve()
    try:
        text = reader(path) if reader else path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror}") from None
    config = parse_config(text, source=str(path), base=path.parent)
    return Config(**{**config.__dict__, "path": path})
