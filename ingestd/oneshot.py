"""``ingestd process FILE...``: the SDK's five-line example, for people who want no daemon.

The files go through the daemon's own code, not a copy of it: intake fingerprints and
records each one (`ingestd.intake.Intake`), then `ingestd.pipeline.Pipeline` runs its stages
(probe, transcode, endpoint, parameters, upload, wait, fetch, deliver) one after the other,
in the order given, and the insights are printed as Markdown or JSON.

- ``--config FILE``: that config's backend, parameters and sinks, and its state database: the
  recordings are stored there, so a daemon with the same config will not submit them again
  (a running daemon holds the state lock: process refuses rather than race it).
- ``--sandbox``: the embedded emulator and a throwaway state, said on stderr.
- ``--append-to ID`` appends every file, in order, to an existing conversation.
- ``--param KEY=VALUE`` sets a Symbl parameter (VALUE as JSON when it parses, else text).

A progress line on stderr when it is a terminal: upload bytes, then the wait for the job.
Exit 0 when every file succeeded; a rejected or failed file prints the same message the
daemon stores, and the exit code is 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, TextIO

import yaml

from ingestd import jsontext
from ingestd.config import Config, WatchConfig
from ingestd.errors import ConfigError, IngestdError
from ingestd.lifecycle import PIPELINE, State
from ingestd.logging import redact
from ingestd.model import EXISTING_CONVERSATION, Insights
from ingestd.store import RecordingRow

INTERRUPTED = 130
"""Exit code after Ctrl-C or SIGINT, as a shell reports a command killed by SIGINT."""

SANDBOX_NOTE = (
    "ingestd: using the embedded Symbl sandbox (no account, nothing leaves this machine; "
    "its transcripts are made up from the file's bytes)"
)


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "process", help="process files once, without a daemon, and print their insights"
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--config", "-c", type=Path, help="the YAML file (its backend, sinks, state)"
    )
    source.add_argument("--sandbox", action="store_true", help="use the embedded Symbl emulator")
    p.add_argument("--append-to", metavar="CONVERSATION_ID", help="append to this conversation")
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a Symbl parameter, e.g. languageCode=de-DE (VALUE as JSON when it parses)",
    )
    output = p.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="one JSON object per file, in a list")
    output.add_argument("--markdown", action="store_true", help="Markdown (the default)")
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")
    p.set_defaults(func=cmd_process)


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs; VALUE as JSON (``true``, ``2``, ``["a"]``) when it parses."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--param {pair!r}: expected KEY=VALUE, e.g. languageCode=en-US")
        try:
            params[key] = json.loads(value)
        except ValueError:
            params[key] = value
    return params


def sandbox_config(root: Path) -> Config:
    """A config for ``--sandbox``: the embedded emulator, state under `root`, no sinks."""
    from ingestd.configload import parse_config

    data = {
        "symbl": {"base_url": "sandbox", "webhook": False},
        "state": {"url": f"sqlite:///{root / 'state.db'}"},
        "watch": [{"path": str(root / "none"), "name": "process-sandbox"}],
        "sinks": [],
    }
    return parse_config(yaml.safe_dump(data), source="<ingestd process --sandbox>", base=root)


def cmd_process(args: argparse.Namespace) -> int:
    from ingestd.logging import configure, register_config_secrets

    params = parse_params(args.param)
    missing = [str(f) for f in args.files if not f.is_file()]
    if missing:
        raise IngestdError(f"no such file: {', '.join(missing)}")
    configure("critical", "console")  # what went wrong is said once, below the run
    _logs_to_stderr()
    scratch: Path | None = None
    try:
        if args.sandbox:
            print(SANDBOX_NOTE, file=sys.stderr)
            scratch = Path(tempfile.mkdtemp(prefix="ingestd-process-"))
            config = sandbox_config(scratch)
        else:
            from ingestd.commands import _load

            config = _load(args)
        register_config_secrets(config)
        try:
            return asyncio.run(_process(config, args, params, sandbox=args.sandbox))
        except KeyboardInterrupt:
            again = (
                "what was sent is recorded: the same command finishes it without uploading it again"
                if not args.sandbox
                else "nothing was kept (--sandbox)"
            )
            print(f"\ningestd: interrupted; {again}", file=sys.stderr)
            return INTERRUPTED
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def _logs_to_stderr() -> None:
    """Log lines (errors only) go to stderr: stdout is the insights, maybe piped to jq."""
    import structlog

    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=sys.stderr))


async def _process(
    config: Config, args: argparse.Namespace, params: dict[str, Any], *, sandbox: bool
) -> int:
    from ingestd.backends import build_backend
    from ingestd.daemon import StateLock, build_sinks, validate_watches
    from ingestd.intake import Intake
    from ingestd.pipeline import Pipeline
    from ingestd.plugins import load_plugins
    from ingestd.store import open_store

    db_path = config.state_path or config.work_dir / "state.db"
    lock = StateLock(db_path)
    lock.acquire()  # a daemon on this state would drive our recordings too: refuse
    store = open_store(db_path)
    try:
        plugins = load_plugins(config.plugins, config.disable_plugins)
        validate_watches(config, plugins)
        sinks = build_sinks(config, plugins)
        backend = build_backend(config, plugins)
        try:
            pipeline = Pipeline(config, store, plugins, backend, sinks)
            intake = Intake(
                store, plugins, pipeline.recording, on_new=lambda: None, renominate=_ignore
            )
            progress = Progress(sys.stderr)
            outcomes = []
            for file in args.files:
                watch = _watch_for(config, file.resolve(), params)
                pipeline.watches[watch.name] = watch
                outcomes.append(
                    await _one(store, intake, pipeline, watch, file, progress, args.append_to)
                )
        finally:
            await backend.aclose()
            for sink in sinks.values():
                with contextlib.suppress(Exception):
                    await sink.aclose()
    finally:
        store.close()
        lock.release()
    failed = [o for o in outcomes if o["error"]]
    for outcome in failed:
        print(f"ingestd: {redact(outcome['error'])}", file=sys.stderr)
    done = [o for o in outcomes if not o["error"]]
    if args.json:
        print(json.dumps([o["json"] for o in done], indent=2))
    else:
        print("\n\n".join(o["markdown"] for o in done))
    return 1 if failed else 0


def _ignore(*_: Any) -> None:
    return None


def _watch_for(config: Config, file: Path, params: dict[str, Any]) -> WatchConfig:
    """The config's watch holding `file` (its options apply, its recordings are known to
    the daemon), else a watch of the file's folder with the config's global parameters;
    with the command line's parameters on top."""
    watch = next((w for w in config.watches if file.is_relative_to(w.path)), None)
    if watch is None:
        watch = WatchConfig(
            name=f"process:{file.parent}",
            path=file.parent,
            recursive=False,
            parameters=_global_parameters(config),
        )
    return dataclasses.replace(watch, parameters={**watch.parameters, **params})


def _global_parameters(config: Config) -> dict[str, Any]:
    """The top-level ``parameters:`` of the config file (watches get them merged in)."""
    if config.path is None:
        return {}
    try:
        raw = yaml.safe_load(config.path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return {}
    found = raw.get("parameters") if isinstance(raw, dict) else None
    return dict(found) if isinstance(found, dict) else {}


async def _one(
    store: Any,
    intake: Any,
    pipeline: Any,
    watch: WatchConfig,
    file: Path,
    progress: Progress,
    append_to: str | None,
) -> dict[str, Any]:
    """Record `file` as the daemon would, run its stages to the end; what to print."""
    from ingestd.watch import relpath

    path = file.resolve()
    rel = relpath(watch, path)
    await intake.settled(watch, path)
    row = store.latest_for_path(watch.name, rel)
    if row is None:
        return {"error": f"{file}: it could not be read (or vanished while it was read)"}
    if append_to and row.state is State.DISCOVERED:  # the command line's choice wins
        key = f"{EXISTING_CONVERSATION}{append_to}"
        store.pin_conversation(key, append_to)
        row = store.update(row.id, conversation_key=key)
    if row.state is State.DUPLICATE and row.duplicate_of is not None:
        row = store.get(row.duplicate_of)  # the same bytes were processed before: reuse
    progress.start(file.name)
    try:
        while row.state in PIPELINE:
            wait = row.next_attempt_at - time.time()
            if wait > 0:
                progress.show(row, waiting=wait)
                await asyncio.sleep(min(wait, 1.0))
                row = store.get(row.id)
                continue
            progress.show(row)
            row = await progress.around(row, pipeline.run_stage(row))
    finally:
        progress.end()
    if row.state is not State.DONE or row.insights_path is None:
        return {"error": row.error or f"{file}: it ended {row.state}"}  # the daemon's words
    insights = Insights.from_dict(jsontext.read(row.insights_path))
    return {
        "error": None,
        "json": _json(row, insights, file),
        "markdown": _markdown(insights, file),
    }


def _json(row: RecordingRow, insights: Insights, file: Path) -> dict[str, Any]:
    data = insights.to_dict()
    data.pop("conversation_id")
    return {"file": str(file), "recordingId": row.id, "conversationId": row.conversation_id, **data}


def _markdown(insights: Insights, file: Path) -> str:
    """The insights as Markdown: transcript, then each kind of insight that has items."""
    name = insights.conversation.get("name") or file.stem
    lines = [f"# {_md(str(name))}", "", f"Conversation `{insights.conversation_id}` ({file})"]
    if insights.messages:
        lines += ["", "## Transcript", ""]
        for m in insights.messages:
            who = ((m.get("from") or {}).get("name") or "").strip()
            text = _md(str(m.get("text", "")))
            lines.append(f"- **{_md(who)}:** {text}" if who else f"- {text}")
    for kind, title in (
        ("action_items", "Action items"),
        ("follow_ups", "Follow-ups"),
        ("questions", "Questions"),
        ("topics", "Topics"),
        ("summary", "Summary"),
    ):
        items = getattr(insights, kind)
        if items:
            lines += ["", f"## {title}", ""]
            lines += [f"- {_md(str(i.get('text', '')))}" for i in items]
    return "\n".join(lines)


def _md(text: str) -> str:
    """User text in Markdown: one line, markup characters escaped."""
    import re

    return re.sub(r"([\\`*_\[\]<>|#])", r"\\\1", " ".join(text.split()))


class Progress:
    """One line on a terminal's stderr: the file, its stage, upload bytes, the job wait.
    Nothing at all when stderr is not a terminal (a pipe, a log file)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.enabled = stream.isatty()
        self.name = ""
        self._since = time.monotonic()
        self._row: RecordingRow | None = None
        self._width = 0

    def start(self, name: str) -> None:
        self.name = name

    def show(self, row: RecordingRow, waiting: float | None = None) -> None:
        if self._row is None or self._row.state is not row.state:
            self._since = time.monotonic()
        self._row = row
        self._draw(waiting)

    async def around(self, row: RecordingRow, stage: Any) -> RecordingRow:
        """Await a stage, redrawing the line every 0.2 s while it runs."""
        if not self.enabled:
            return await stage
        task = asyncio.ensure_future(stage)
        while not task.done():
            await asyncio.wait({task}, timeout=0.2)
            self._draw(None)
        return task.result()

    def _draw(self, waiting: float | None) -> None:
        if not self.enabled or self._row is None:
            return
        from ingestd import progress

        state = self._row.state
        seconds = time.monotonic() - self._since
        detail = str(state)
        if state is State.SUBMITTING:
            sent = progress.uploads().get(str(self._row.upload_path or self._row.path))
            if sent:
                done, size = sent
                filled = int(20 * done / size) if size else 20
                detail = f"uploading [{'#' * filled}{'.' * (20 - filled)}] {done}/{size} bytes"
            else:
                detail = "uploading"
        elif state is State.SUBMITTED:
            detail = f"waiting for the job ({seconds:.0f} s)"
        elif state is State.FETCHING:
            detail = "fetching insights"
        if waiting is not None:
            detail += f", retrying in {waiting:.0f} s"
        line = f"{self.name}: {detail}"
        self.stream.write("\r" + line.ljust(self._width))
        self.stream.flush()
        self._width = len(line)

    def end(self) -> None:
        if self.enabled and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
        self._row, self._width = None, 0
