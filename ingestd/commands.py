"""The ``ingestd`` subcommands (`build_parser` lists them all, and so does ``--help``).

`ingestd.cli` is the entry point: it sets up stop signals before importing this module.
User errors print one line (no traceback) and exit with a code from `ExitCode`; a bad
configuration exits 78 (EX_CONFIG), which the systemd unit lists in
RestartPreventExitStatus so a broken YAML never crash-loops. Everything printed that comes
from outside (errors stored by the daemon, exception messages) goes through
`ingestd.logging.redact` first.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from datetime import UTC, datetime
from enum import IntEnum
from pathlib import Path
from typing import Any

from ingestd import (
    aftermath,
    deletions,
    dismiss,
    drain,
    explain,
    installunit,
    oneshot,
    show,
    waiting,
)
from ingestd.config import Config
from ingestd.configload import load_config
from ingestd.errors import ConfigError, IngestdError, PluginError, StoreError
from ingestd.folders import missing_now
from ingestd.lifecycle import NEEDS_A_PERSON, PIPELINE, RESUMABLE_TERMINALS, State
from ingestd.logging import configure, redact, register_config_secrets, register_secrets
from ingestd.nodes import holders, node_rows
from ingestd.wording import plural


class ExitCode(IntEnum):
    OK = 0
    ERROR = 1
    USAGE = 2
    UNAVAILABLE = 69  # EX_UNAVAILABLE: the API or the state store cannot be used
    CONFIG = 78  # EX_CONFIG


class UsageError(IngestdError):
    """The command line asks for something that does not exist (a sink name, ...): exit 2,
    as argparse does, not 78, which says the config file is broken."""


def _load(args: argparse.Namespace) -> Config:
    config = load_config(args.config)
    register_config_secrets(config)
    register_secrets([str(config.backend_options.get("app_id") or "")])  # an account id
    return config


def cmd_run(args: argparse.Namespace) -> int:
    from ingestd.daemon import Daemon

    config = _load(args)
    configure(config.log_level, config.log_format)
    return asyncio.run(Daemon(config).run())


def cmd_check(args: argparse.Namespace) -> int:
    """Try everything `run` would fail on; print every problem at once (`ingestd.preflight`)."""
    from ingestd.plugins import load_plugins
    from ingestd.preflight import Report, run_checks

    config = _load(args)
    configure("warning", "console")
    plugins = load_plugins(config.plugins, config.disable_plugins)
    _print_plugins(plugins)
    report = Report()
    for row in plugins.failed():
        report.failed(f"plugin {row.name}", row.status)
    run_checks(config, plugins, report)
    if report.all:
        print(
            f"\ningestd check: {plural(len(report.all), 'problem')}; `ingestd run` would not work:",
            file=sys.stderr,
        )
        for problem in report.all:
            print(f"  {problem}", file=sys.stderr)
        return ExitCode.CONFIG if report.config_problems else ExitCode.ERROR
    print("\ncheck: ok; `ingestd run` would start and reach everything it needs")
    return ExitCode.OK


def _print_plugins(plugins: Any) -> None:
    print(f"{'plugin':<12} {'source':<12} {'distribution':<20} {'status':<10} hooks")
    for row in plugins.info:
        dist = f"{row.distribution} {row.version}".strip() or row.module
        print(f"{row.name:<12} {row.source:<12} {dist:<20} {row.status:<10} {', '.join(row.hooks)}")


def cmd_plugins(args: argparse.Namespace) -> int:
    from ingestd.plugins import load_plugins

    configure("error", "console")
    local: tuple[str, ...] = ()
    disabled: tuple[str, ...] = ()
    if args.config:
        config = _load(args)
        local, disabled = config.plugins, config.disable_plugins
    plugins = load_plugins(local, disabled)
    if args.json:
        print(json.dumps([row.__dict__ for row in plugins.info], indent=2))
    else:
        _print_plugins(plugins)
    return ExitCode.OK


def _open_store(config: Config) -> Any:
    from ingestd.store import open_configured, open_store

    path = config.state_path
    if path is None:  # a database server: the daemon or this command creates the schema
        return open_configured(config)
    if not path.exists():
        raise StoreError(
            f"no state database at {path} yet: the daemon has not run with this config "
            f"(`ingestd run` creates it), or state.url points somewhere else"
        )
    return open_store(path)


def _transitions(config: Config, store: Any) -> Any:
    """State changes made by a command go through `ingestd.transitions` like the daemon's:
    the configured plugins are loaded here and their event hooks run in this process."""
    from ingestd.plugins import load_plugins
    from ingestd.transitions import Transitions, recording_of

    plugins = load_plugins(config.plugins, config.disable_plugins)
    watches = {w.name: w for w in config.watches}
    return Transitions(store, plugins, lambda row: recording_of(row, watches))


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _print_nodes(store: Any, nodes: list[dict[str, Any]]) -> None:
    """The daemons on a shared (PostgreSQL) state database, and what each holds."""
    if not nodes:
        print(f"nodes: none running on {store.where}\n")
        return
    name_width = max(12, *(len(n["name"]) for n in nodes))
    host_width = max(16, *(len(n["host"] or "") for n in nodes))
    print(f"{'node':<{name_width}} {'host':<{host_width}}     pid  heartbeat  state   claims")
    for n in nodes:
        pid = "-" if n["pid"] is None else str(n["pid"])
        heard = f"{n['heartbeat_age_seconds']:.0f} s ago"
        print(
            f"{n['name']:<{name_width}} {n['host'] or '':<{host_width}} {pid:>7}  {heard:>9}  "
            f"{n['state']:<7} {n['claims']:>6}{'  draining' if n['draining'] else ''}"
        )
    print()


def _holder(claim: dict[str, Any] | None) -> str:
    """Who drives an in-flight recording, for its status line: nothing on SQLite (this
    daemon) or when its last node let go of it (it waits for its turn)."""
    if claim is None or claim["state"] == "released":
        return ""
    if claim["state"] == "expired":
        return f" [the lease of node {claim['node']} ran out: the next node takes it over]"
    return f" [node {claim['node']}]"


def cmd_status(args: argparse.Namespace) -> int:
    config = _load(args)
    store = _open_store(config)
    counts = store.counts_by_state()
    problems = store.latest(NEEDS_A_PERSON, limit=args.limit)
    busy = store.latest(PIPELINE, limit=args.limit)
    deliveries = store.delivery_counts()
    missing = missing_now(config.watches)
    explainer = waiting.Explainer(store, config.backend_options)
    now = time.time()
    claims = store.claims()
    nodes = node_rows(store.nodes(), claims, now, config.node_lease_seconds)
    held = holders(claims)
    if args.json:
        data = {
            "missing_watch_folders": [
                {"watch": w.name, "path": str(w.path), "problem": p} for w, p in missing
            ],
            "counts": {str(s): counts.get(str(s), 0) for s in State},
            "deliveries": deliveries,
            "in_progress": [
                {**_row_json(r, store), "reason": explainer.reason(r), "claim": held.get(r.id)}
                for r in busy
            ],
            "failures": [{**_row_json(r, store), "hint": waiting.file_hint(r)} for r in problems],
            **aftermath.status(store),
            "nodes": nodes,
        }
        print(json.dumps(data, indent=2))
        return ExitCode.OK
    if config.state_path is None:  # PostgreSQL: the nodes sharing it, even if none runs
        _print_nodes(store, nodes)
    if not counts:  # the daemon has run (the database exists) but recorded nothing yet
        print(f"no recordings yet in {store.where}; files appear here once they settle")
        _print_missing(missing)
        return ExitCode.OK
    print("state        count")
    for state in State:
        print(f"{state:<12} {counts.get(str(state), 0):>5}")
    if deliveries:
        print("\nsink         pending   done failed")
        for sink, by_state in sorted(deliveries.items()):
            print(
                f"{sink:<12} {by_state['pending']:>7} {by_state['done']:>6} {by_state['failed']:>6}"
            )
    for line in aftermath.status_lines(store):
        print(line)
    if busy:
        print("\nin progress")
        for r in busy:
            retry = (
                f" (retry at {_when(r.next_attempt_at)})" if r.next_attempt_at > time.time() else ""
            )
            node = _holder(held.get(r.id))
            print(f"  #{r.id:<5} {r.state:<11} {r.watch}/{r.relpath}{retry}{node}")
            print(f"         {explainer.reason(r)}")
    if problems:
        print("\nlatest failures")
        for r in problems:
            # the conversation id is what `ingestd redeliver`, named in sink errors, takes
            where = f" (conversation {r.conversation_id})" if r.conversation_id else ""
            print(f"  #{r.id:<5} {r.state:<9} {_when(r.updated_at)} {r.watch}/{r.relpath}{where}")
            print(f"         {redact(r.error or '')}")
            hint = waiting.file_hint(r)
            if hint:
                print(f"         {hint}")
    _print_missing(missing)
    return ExitCode.OK


def _print_missing(missing: list[Any]) -> None:
    if missing:
        print("\nwatch folders missing: nothing is ingested from them until they are back")
        for watch, problem in missing:
            print(f"  {watch.name}: {watch.path} {problem}")


def _row_json(row: Any, store: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "watch": row.watch,
        "path": row.relpath,
        "state": str(row.state),
        "error": redact(row.error) if row.error else row.error,
        "attempts": row.attempts,
        "conversation_id": row.conversation_id,
        "job_id": row.job_id,
        "updated_at": row.updated_at,
        "deliveries": [
            {**d, "error": redact(d["error"]) if d.get("error") else d.get("error")}
            for d in store.deliveries(row.id)
        ],
    }


def _recording(store: Any, recording_id: int) -> Any:
    """The row with this id, or one line saying there is none (never a KeyError traceback)."""
    try:
        return store.get(recording_id)
    except KeyError:
        raise IngestdError(
            f"no recording #{recording_id} in the state database; `ingestd status` lists them"
        ) from None


def cmd_retry(args: argparse.Namespace) -> int:
    config = _load(args)
    store = _open_store(config)
    changes = _transitions(config, store)
    rows = (
        [_recording(store, i) for i in args.ids]
        if args.ids
        else store.latest(RESUMABLE_TERMINALS, 10**6)
    )
    retried = 0
    for row in rows:
        if row.state not in RESUMABLE_TERMINALS:
            print(f"#{row.id} is {row.state}, not failed or rejected; left alone")
            continue
        resolved = dismiss.before_retry(changes, row)  # file replaced or gone: nothing to retry
        if resolved is not None:
            print(resolved)
            continue
        target = (
            State.DISCOVERED
            if row.state is State.REJECTED
            else State(row.failed_from or "discovered")
        )
        reset: dict[str, Any] = {}
        if target in (State.DISCOVERED, State.PROBED, State.TRANSCODED, State.QUEUED):
            # nothing of this attempt reached the API: start the upload afresh
            reset = {"upload_started_at": None, "conversation_id": None, "job_id": None}
        # Sinks that gave up get a fresh set of attempts; sinks already done are left alone.
        failed_sinks = [d["sink"] for d in store.deliveries(row.id) if d["state"] == "failed"]
        changes.change(row, target, facts={"retry": True}, deliveries=failed_sinks, **reset)
        print(f"#{row.id} {row.relpath}: {row.state} -> {target}")
        retried += 1
    print(
        f"{plural(retried, 'recording')} re-queued; a running daemon picks them up within seconds"
    )
    return ExitCode.OK


def cmd_redeliver(args: argparse.Namespace) -> int:
    """Deliver a conversation's latest insights again, to one sink or all of them; with
    ``--all``, every done conversation (``--since DATE``: finished since then), e.g. to a
    sink added after they were done. Sinks are idempotent, so running it twice leaves one
    copy of each conversation.

    Works on the conversation's latest part once its insights are saved: done, or failed
    while delivering (a sink gave up; the hint in its error leads here).
    """
    from ingestd.daemon import sink_names

    config = _load(args)
    if bool(args.all) == bool(args.conversation_id):
        raise UsageError("redeliver takes a CONVERSATION_ID or --all, one of the two")
    if args.since and not args.all:
        raise UsageError("--since goes with --all")
    since = _since(args.since) if args.since else None
    store = _open_store(config)
    sinks = sink_names(config.sinks)
    if args.sink and args.sink not in sinks:
        raise UsageError(
            f"no sink named {args.sink!r} in {config.path} (sinks: {', '.join(sinks)})"
        )
    targets = [args.sink] if args.sink else sinks
    transitions = _transitions(config, store)
    sinks_text = ", ".join(targets)
    if args.all:
        from ingestd.backfill import done_conversations

        latest_parts = done_conversations(store, since)
        for latest in latest_parts:
            transitions.change(
                latest, State.DELIVERING, deliveries=targets, facts={"redeliver": targets}
            )
        when = f" finished since {_when(since)}" if since is not None else ""
        print(
            f"{plural(len(latest_parts), 'done conversation')}{when} queued for redelivery to "
            f"{sinks_text}; a running daemon delivers them within seconds (else at its start)"
        )
        return ExitCode.OK
    parts = store.parts_of(args.conversation_id)
    if not parts:
        raise IngestdError(
            f"no recording of conversation {args.conversation_id} in the store has finished "
            f"its job; `ingestd status` shows where its recordings are"
        )
    latest = parts[-1]
    if latest.state in (State.FETCHING, State.DELIVERING):
        print(f"#{latest.id} is {latest.state}; it will deliver by itself")
        return ExitCode.OK
    if latest.insights_path is None:  # failed while fetching: nothing saved to deliver yet
        raise IngestdError(
            f"#{latest.id} {latest.relpath} failed before its insights were saved "
            f"({redact(latest.error or 'no error recorded')}); `ingestd retry {latest.id}` "
            f"fetches and delivers them"
        )
    transitions.change(latest, State.DELIVERING, deliveries=targets, facts={"redeliver": targets})
    print(f"conversation {args.conversation_id}: redelivery to {sinks_text} queued (#{latest.id})")
    return ExitCode.OK


def _since(text: str) -> float:
    """``--since``: an ISO date or date and time (local time unless it says its zone)."""
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise UsageError(
            f"--since {text!r}: expected a date like 2026-05-01 or 2026-05-01T09:30"
        ) from None


def cmd_map(args: argparse.Namespace) -> int:
    """List or edit the persistent conversation mapping (key -> conversationId)."""
    config = _load(args)
    store = _open_store(config)
    if args.action == "set":
        if not args.key or not args.conversation_id:
            raise IngestdError("usage: ingestd map set KEY CONVERSATION_ID")
        store.set_mapping(args.key, args.conversation_id)
        print(f"{args.key} -> {args.conversation_id}")
    elif args.action == "delete":
        if not args.key:
            raise IngestdError("usage: ingestd map delete KEY")
        if not store.delete_mapping(args.key):
            raise IngestdError(f"no mapping for key {args.key!r}")
        print(f"{args.key}: removed; the next recording with this key starts a new conversation")
    else:
        rows = store.mappings()
        if args.json:
            print(json.dumps(rows, indent=2))
            return ExitCode.OK
        print(f"{'key':<48} {'conversation':<18} created")
        for row in rows:
            print(f"{row['key']:<48} {row['conversation_id']:<18} {_when(row['created_at'])}")
    return ExitCode.OK


def cmd_sandbox(args: argparse.Namespace) -> int:
    from ingestd.sandbox import Sandbox, SandboxOptions

    options = SandboxOptions(
        app_id=args.app_id,
        app_secret=args.app_secret,
        job_seconds=args.job_seconds,
        concurrency_limit=args.concurrency_limit,
        token_lifetime_seconds=args.token_lifetime,
    )
    sandbox = Sandbox(options)

    def ready(url: str) -> None:
        print(
            f"Symbl sandbox on {url} (app id {args.app_id!r}); its insights are made up "
            "(sentences derived from each upload's bytes), not transcripts; Ctrl-C stops",
            flush=True,
        )

    signal.signal(signal.SIGTERM, lambda *_: sandbox.stop())
    sandbox.serve_forever(args.host, args.port, ready=ready)
    return ExitCode.OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ingestd")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_config(p: argparse.ArgumentParser, required: bool = True) -> None:
        p.add_argument("--config", "-c", required=required, type=Path, help="the YAML file")

    p = sub.add_parser("run", help="run the daemon in the foreground (what systemd calls)")
    with_config(p)
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("check", help="validate the config and credentials, list plugins")
    with_config(p)
    p.set_defaults(func=cmd_check)
    p = sub.add_parser("status", help="recordings by state and the latest failures")
    with_config(p)
    p.add_argument("--json", action="store_true")
    p.add_argument("--limit", type=int, default=10)
    p.set_defaults(func=cmd_status)
    p = sub.add_parser("retry", help="re-queue failed or rejected recordings")
    with_config(p)
    p.add_argument("ids", nargs="*", type=int, help="recording ids (default: every failed one)")
    p.set_defaults(func=cmd_retry, quiet_logging=True)
    p = sub.add_parser(
        "redeliver",
        help="deliver a conversation again, or every done one (--all), to one sink or all",
    )
    with_config(p)
    p.add_argument("conversation_id", nargs="?", help="the conversation to deliver again")
    p.add_argument(
        "--all",
        action="store_true",
        help="every done conversation (e.g. to backfill a sink added later); idempotent",
    )
    p.add_argument(
        "--since",
        metavar="DATE",
        help="with --all: only conversations finished since DATE (2026-05-01[T09:30])",
    )
    p.add_argument(
        "--sink",
        help="the sink's name: its `name`, else its type (a repeated one gets its position "
        "in the list appended, e.g. slack-2)",
    )
    p.set_defaults(func=cmd_redeliver, quiet_logging=True)
    p = sub.add_parser("map", help="list or edit the conversation mapping")
    with_config(p)
    p.add_argument("action", nargs="?", choices=("list", "set", "delete"), default="list")
    p.add_argument("key", nargs="?")
    p.add_argument("conversation_id", nargs="?")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_map)
    show.add_parser(sub, with_config)
    explain.add_parser(sub, with_config)
    deletions.add_parsers(sub, with_config)
    oneshot.add_parser(sub)
    dismiss.add_parser(sub, with_config)
    drain.add_parsers(sub, with_config)
    p = sub.add_parser("plugins", help="list plugins and the hooks each implements")
    with_config(p, required=False)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_plugins)
    p = sub.add_parser(
        "install-unit", help="create the ingestd user, /etc/ingestd and the systemd units"
    )
    installunit.add_arguments(p)
    p.set_defaults(func=installunit.install_unit)
    p = sub.add_parser(
        "sandbox",
        help="run the Symbl API emulator on its own",
        description="Run the Symbl API emulator on its own, for a config whose "
        "symbl.base_url points at it (http://127.0.0.1:8787). Its insights are made up: "
        "deterministic sentences derived from each upload's bytes, not what was said.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=8787, help="port to listen on (0: any free one)")
    p.add_argument("--app-id", default="sandbox", help="the app id clients must present")
    p.add_argument("--app-secret", default="sandbox", help="the app secret clients must present")
    p.add_argument(
        "--job-seconds",
        type=float,
        default=2.0,
        help="how long each job runs before it completes",
    )
    p.add_argument(
        "--concurrency-limit",
        type=int,
        default=5,
        help="jobs in flight at once before submissions get 429 (the account's limit)",
    )
    p.add_argument(
        "--token-lifetime",
        type=int,
        default=86400,
        help="seconds an access token stays valid (expiresIn)",
    )
    p.set_defaults(func=cmd_sandbox)
    parser.description = (
        "Watch folders for recordings, send them to a transcription API (Symbl.ai's by default, "
        "or the backend the config chooses) and deliver the "
        f"insights to sinks. Subcommands: {', '.join(sub.choices)}; each has its own --help."
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse `argv` and run the subcommand; user errors become one line and an exit code."""
    args = build_parser().parse_args(argv)
    if args.func is not cmd_run:
        # One-shot commands change things as they go: a stop signal ends them as usual, not
        # with the "nothing started yet" exit 0 that `ingestd.cli` set up.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if getattr(args, "quiet_logging", False):
        # Set here, not in the command: the dashboard runs the same commands inside the
        # daemon, whose logging they must not reconfigure.
        configure("warning", "console")  # a raising event hook is shown; state_changed is not
    try:
        return int(args.func(args))
    except ConfigError as exc:
        problems = (redact(p) for p in exc.problems)
        print("ingestd: configuration error:\n  " + "\n  ".join(problems), file=sys.stderr)
        return ExitCode.CONFIG
    except UsageError as exc:
        print(f"ingestd: {redact(str(exc))}", file=sys.stderr)
        return ExitCode.USAGE
    except PluginError as exc:
        print(f"ingestd: {redact(str(exc))}", file=sys.stderr)
        return ExitCode.CONFIG
    except StoreError as exc:
        print(f"ingestd: {redact(str(exc))}", file=sys.stderr)
        return ExitCode.UNAVAILABLE
    except IngestdError as exc:
        print(f"ingestd: {redact(str(exc))}", file=sys.stderr)
        return ExitCode.ERROR
    except KeyboardInterrupt:
        return ExitCode.OK
