"""The daemon's life: startup -> run -> shutdown, like uvicorn's server.

startup: state store (locked, so two daemons never share one), plugins, backend, sinks,
resume in-flight recordings, watchers and the startup rescan, then READY=1.
run: the dispatcher starts each recording's next stage when it is due — earlier parts of a
conversation first, and never more jobs in flight than the account allows.
shutdown (SIGTERM/SIGINT): stop noticing files, let uploads and deliveries finish for up to
``shutdown_grace_seconds``, cancel the rest (every state is durable, so they resume at the
next start), STOPPING=1. A second signal cancels at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import gc
import os
import signal
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import structlog

from ingestd import systemd
from ingestd.aftermath import AFTERMATH_LEADER, Aftermath, SharedWork
from ingestd.backends import build_backend, job_limit, validate_backend_choice
from ingestd.config import Config, WatchConfig
from ingestd.configload import load_config, locate, unknown_watch_keys
from ingestd.errors import ConfigError, IngestdError, LeaseLost, StoreError
from ingestd.folders import FolderGuard, prepare_folders
from ingestd.intake import Intake
from ingestd.lifecycle import PIPELINE, PREPARING, State
from ingestd.logging import register_config_secrets
from ingestd.metrics import Health, MetricsServer
from ingestd.nodes import Membership
from ingestd.ordering import OrderingHold
from ingestd.pipeline import Pipeline
from ingestd.placement import Placement
from ingestd.plugins import Plugins, load_plugins
from ingestd.registry import Sink, SinkContext
from ingestd.settle import Settler
from ingestd.store import RecordingRow, open_configured
from ingestd.store.base import Claim
from ingestd.transcode import clean_work_files
from ingestd.watch import IgnoredFiles, Watcher, scan

log = structlog.get_logger()

# Stages that may be interrupted at shutdown without waiting: their state is durable and
# resuming them repeats nothing that reached the API.
_CANCEL_AT_ONCE = (State.SUBMITTED, State.QUEUED, State.DISCOVERED, State.PROBED)


def sink_names(sinks: Sequence[Mapping[str, Any]]) -> list[str]:
    """Each configured sink's stable name, in config order: its `name` option, else its type;
    a name already taken gets the sink's position appended (``slack``, ``slack-1``).

    The outbox keys deliveries by these names, so the daemon (`build_sinks`) and the
    commands that name sinks (`ingestd redeliver --sink`) must both use this function.
    """
    names: list[str] = []
    for i, options in enumerate(sinks):
        name = str(options.get("name", options["type"]))
        while name in names:
            name = f"{name}-{i}"
        names.append(name)
    return names


def build_sinks(config: Config, plugins: Plugins) -> dict[str, Sink]:
    """Sinks by their stable name (`sink_names`)."""
    sinks, problems = build_each_sink(config, plugins)
    if problems:
        raise ConfigError(locate(config, problems))
    return sinks


def build_each_sink(config: Config, plugins: Plugins) -> tuple[dict[str, Sink], list[str]]:
    """Every sink that can be built, and the problems of those that cannot (unlocated), so
    `ingestd check` can try the good ones while reporting the bad."""
    sinks: dict[str, Sink] = {}
    problems: list[str] = []
    for i, (name, options) in enumerate(zip(sink_names(config.sinks), config.sinks, strict=True)):
        options = dict(options)
        kind = options.pop("type")
        options.pop("name", None)
        try:
            factory = plugins.sinks.get(kind, key_path=f"sinks[{i}].type")
            context = SinkContext(
                name=name,
                key_path=f"sinks[{i}]",
                config_path=config.path,
                state_dir=config.state_dir,
            )
            sinks[name] = factory(options, context)
        except ConfigError as exc:
            problems.extend(exc.problems)
    return sinks, problems


def validate_watches(config: Config, plugins: Plugins) -> None:
    """Let each plugin check the per-watch options it owns; raise every problem at once.
    A key of a watch that neither the core nor a plugin (``ingestd_watch_keys``) owns is
    an unknown key."""
    claimed = {str(k) for keys, _ in plugins.call_all("ingestd_watch_keys") for k in keys or ()}
    problems: list[str] = unknown_watch_keys(config, claimed)
    for watch in config.watches:
        try:
            for answer, _ in plugins.call_all("ingestd_validate_watch", watch=watch):
                problems.extend(answer or [])
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(locate(config, problems))


STATUS_SECONDS = 1.0
"""How often the STATUS= line is recomputed; it is sent only when it changed."""

GC_YOUNG_THRESHOLD = 10_000
"""Allocations between two collections of the youngest generation (Python's default: 700)."""


def tune_garbage_collector() -> None:
    """Once started: what start-up made (modules, plugins, config) lives as long as the
    daemon, so it is frozen out of every later collection, and the young generation is
    collected every 10,000 allocations instead of 700 -- a recording makes thousands of
    short-lived objects, and collecting them 15 times over walked live ones each time
    (issue 18's profile: about 2 % of the daemon's CPU in the collector)."""
    gc.collect()
    gc.freeze()
    young, middle, old = gc.get_threshold()
    gc.set_threshold(max(young, GC_YOUNG_THRESHOLD), middle, old)


DUE_RECHECK_SECONDS = 0.5
"""How soon a daemon alone on its store looks again at recordings that were due but could
not start, when nothing woke it meanwhile (a safety net: each change that could let one
start wakes the dispatcher at once). Every 50 ms, as before, a backlog of hundreds waiting
for job slots cost two dispatch rounds per recording in the throughput bench."""


def _heartbeat_seconds() -> float:
    """WATCHDOG=1 every WatchdogSec/2 under systemd; the /health heartbeat otherwise."""
    return systemd.watchdog_interval_seconds() or 10.0


class StateLock:
    """An exclusive lock next to the state database: one daemon per store."""

    def __init__(self, db_path: Path) -> None:
        self.path = db_path.with_name(db_path.name + ".lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise StoreError(
                f"another ingestd (pid {holder}) is using the state database next to "
                f"{self.path}; stop it or point this one at another state.url"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class Daemon:
    """One asyncio process: watchers, settler, intake, dispatcher."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._stopping = asyncio.Event()
        self._kick = asyncio.Event()
        self._active: dict[int, tuple[asyncio.Task[None], State]] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._signals = 0
        self._store_failure: IngestdError | None = None  # stopped because the store failed
        self.watchers: list[Watcher] = []
        self.ignored = IgnoredFiles()  # says once per file why it is left out
        self.metrics: MetricsServer | None = None
        self.dashboard: Any = None  # ingestd.dashboard.DashboardServer, when configured
        # /health: stale when the event loop misses three heartbeats in a row
        self.health = Health(stale_after_seconds=3 * _heartbeat_seconds())

    # -- startup ------------------------------------------------------------------------

    async def run(self) -> int:
        """Run until a stop signal; return the process exit code."""
        config = self.config
        lock = StateLock(config.state_path or config.work_dir / "state.db")
        lock.acquire()
        try:
            self.store = open_configured(config, wait=True)
            self.store.check()  # a corrupt file stops us before anything is written to it
            self.membership = Membership(
                self.store,
                config.node_name,
                heartbeat_seconds=config.node_heartbeat_seconds,
                lease_seconds=config.node_lease_seconds,
            )
            self.membership.join()  # a second live daemon under this node name stops here
            self.plugins = load_plugins(config.plugins, config.disable_plugins)
            validate_watches(config, self.plugins)
            self.backend = build_backend(config, self.plugins)
            try:
                self.sinks = build_sinks(config, self.plugins)
                prepare_folders(config)
                return await self._serve()
            finally:
                await self.backend.aclose()
        finally:
            if hasattr(self, "membership"):
                self.membership.leave()
            if hasattr(self, "store"):
                self.store.close()
            lock.release()

    async def _serve(self) -> int:
        loop = asyncio.get_running_loop()
        self._install_signals(loop)
        self.pipeline = Pipeline(
            self.config,
            self.store,
            self.plugins,
            self.backend,
            self.sinks,
            on_change=self._kick.set,
        )
        shared = (
            None
            if self.config.state_path is not None  # SQLite: one daemon does all
            else SharedWork(self.store, self.config.node_name, self.config.node_lease_seconds)
        )
        self.aftermath = Aftermath(lambda: self.config, self.store, self.backend, shared)
        self.settler = Settler(self._on_settled)
        self._ordering_reported: set[str] = set()  # ordering hook failures logged once
        self.intake = Intake(
            self.store,
            self.plugins,
            self.pipeline.recording,
            on_new=self._kick.set,
            renominate=self.settler.nominate,
        )
        self.placement = Placement(
            self.config,
            self.store,
            self.pipeline.watches,
            missing_folders=lambda: self.folders.missing,
            draining=lambda: self.membership.draining,
        )
        self.placement.check_tools()
        self.config.work_dir.mkdir(parents=True, exist_ok=True)
        removed = clean_work_files(self.config.work_dir, self.store.needs_upload_file)
        resumed = self.store.count_states(PIPELINE)
        log.info(
            "daemon_starting",
            watches=len(self.config.watches),
            sinks=list(self.sinks),
            resumed=resumed,
            work_files_removed=removed,
            backend=self.backend.name,
        )
        if self.config.metrics_listen:
            self.metrics = MetricsServer(
                self.config.metrics_listen,
                self.store,
                health=self.health,
                max_concurrent_jobs=job_limit(self.backend),
            )
            self.metrics.start()
        if self.config.dashboard:
            from ingestd.dashboard import start_dashboard  # Jinja2 only when it is on

            self.dashboard = start_dashboard(self, loop)
        self.folders = FolderGuard(self._folder_gone, self._folder_back)
        for watch in self.config.watches:
            watcher = Watcher(
                watch, self.settler.nominate, self._rescan_soon, on_ignored=self.ignored.note
            )
            watcher.start(loop)
            self.watchers.append(watcher)
            self.folders.track(watch)
        await self._rescan()
        self._spawn(self.folders.run())
        self._spawn(self.settler.run())
        self._spawn(self._periodic_rescan())
        self._spawn(self._heartbeat())
        self._spawn(self.membership.run())
        self._spawn(self._keep_claims())
        self._spawn(self.aftermath.run())
        status = self._status_line()
        systemd.notify("READY=1", f"STATUS={status}")
        if systemd.notify_socket():
            self._spawn(self._status_updates(status))
        self.health.ready()
        tune_garbage_collector()
        log.info("daemon_ready")
        try:
            await self._dispatch_loop()
        finally:
            await self._shutdown()
        if self._store_failure is not None:  # exit non-zero, so systemd restarts us
            raise self._store_failure
        return 0

    def _install_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_stop_signal, sig)
        loop.add_signal_handler(signal.SIGHUP, lambda: self._spawn(self.reload()))

    def _on_stop_signal(self, sig: signal.Signals) -> None:
        self._signals += 1
        if self._signals == 1:
            log.info(
                "shutdown_requested",
                signal=sig.name,
                pending=len(self._active),
                how_to_force="send the signal again",
            )
            self._stopping.set()
            self._kick.set()
        else:
            log.warning("shutdown_forced", signal=sig.name, cancelled=len(self._active))
            for task, _ in self._active.values():
                task.cancel()

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- reload --------------------------------------------------------------------------

    async def reload(self) -> None:
        """SIGHUP: validate the file again, then swap watches and sinks; on any problem the
        running configuration stays. Settings that need a restart are named in the log."""
        old = self.config
        systemd.notify("RELOADING=1")
        try:
            if old.path is None:
                raise ConfigError("no config file to reload (started without --config)")
            new = load_config(old.path)
            register_config_secrets(new)  # a new webhook URL is masked like the old one
            validate_watches(new, self.plugins)
            validate_backend_choice(new, self.plugins)  # a mistyped section is no backend's
            prepare_folders(new)
            sinks = build_sinks(new, self.plugins) if new.sinks != old.sinks else self.sinks
        except ConfigError as exc:
            log.error(
                "config_reload_failed",
                problems=exc.problems,
                action="keeping the running configuration",
            )
            systemd.notify("READY=1")
            return
        fixed = (
            "backend", "backends", "state_url", "work_dir", "plugins", "disable_plugins",
            "dashboard", "node_name", "node_heartbeat_seconds", "node_lease_seconds",
        )  # fmt: skip
        needs_restart = [k for k in fixed if getattr(new, k) != getattr(old, k)]
        if needs_restart:
            log.warning(
                "config_reload_partial",
                needs_restart=needs_restart,
                action="these settings keep their running values until a restart",
            )
        new = dataclasses.replace(new, **{k: getattr(old, k) for k in fixed})
        before = {w.name: w for w in old.watches}
        after = {w.name: w for w in new.watches}
        stopped = [n for n, w in before.items() if after.get(n) != w]
        started = [n for n, w in after.items() if before.get(n) != w]
        loop = asyncio.get_running_loop()
        for watcher in [w for w in self.watchers if w.watch.name in stopped]:
            watcher.stop()
            self.watchers.remove(watcher)
            self.folders.forget(watcher.watch.name)
            self.settler.forget_watch(watcher.watch.name)
        self.config = new
        self.pipeline.config = new
        self.pipeline.watches = after
        if sinks is not self.sinks:
            self.pipeline.sinks = sinks
            self.sinks = sinks
        for name in started:
            watcher = Watcher(
                after[name], self.settler.nominate, self._rescan_soon, on_ignored=self.ignored.note
            )
            watcher.start(loop)
            self.watchers.append(watcher)
            self.folders.track(after[name])
        await self._rescan([after[n] for n in started])
        log.info(
            "config_reloaded",
            watches_started=started,
            watches_stopped=stopped,
            sinks=list(self.sinks),
        )
        systemd.notify("READY=1", f"STATUS={self._status_line()}")

    # -- noticing files -----------------------------------------------------------------

    def _folder_gone(self, name: str) -> None:
        """A watch folder vanished (`FolderGuard`): stop its watcher, tell /health."""
        for watcher in self.watchers:
            if watcher.watch.name == name:
                watcher.suspend()
        self.health.folders_missing(self.folders.missing)

    def _folder_back(self, name: str) -> None:
        """It is back: watch it again, and rescan it for what arrived meanwhile."""
        self.health.folders_missing(self.folders.missing)
        if self._stopping.is_set():
            return
        for watcher in self.watchers:
            if watcher.watch.name == name:
                watcher.start(asyncio.get_running_loop())
                self._spawn(self._rescan([watcher.watch]))

    def _rescan_soon(self, watch: WatchConfig) -> None:
        """A watcher lost events (queue overflow, switch to polling): rescan it now."""
        if not self._stopping.is_set():
            self._spawn(self._rescan([watch]))

    def _on_settled(self, watch: WatchConfig, path: Path) -> None:
        if not self._stopping.is_set():
            self._spawn(self.intake.settled(watch, path))

    async def _rescan(self, watches: Iterable[WatchConfig] | None = None) -> None:
        """Nominate every file not already known with the same size and mtime."""
        started = time.monotonic()
        for watch in self.config.watches if watches is None else watches:
            if watch.name in self.folders.missing:
                continue  # its folder is gone: rescanned when it is back
            left_out: list[tuple[str, str]] = []
            found = await asyncio.to_thread(
                lambda w=watch, out=left_out: list(scan(w, on_ignored=lambda *t: out.append(t)))
            )
            for rel, why in left_out:
                self.ignored.note(watch, rel, why)
            new = [p for p, size, mtime in found if not self.intake.is_known(watch, p, size, mtime)]
            for path in new:
                self.settler.nominate(watch, path)
            log.info(
                "rescan_finished",
                watch=watch.name,
                files=len(found),
                new=len(new),
                seconds=round(time.monotonic() - started, 3),
            )

    async def _periodic_rescan(self) -> None:
        while True:
            await asyncio.sleep(self.config.pipeline.rescan_interval_seconds)
            try:
                await self._rescan()
            except StoreError as exc:  # locked or full for now: the next rescan tries again
                log.error("rescan_failed", error=str(exc))

    async def _heartbeat(self) -> None:
        """WATCHDOG=1 from the event loop while every watcher thread is alive."""
        interval = _heartbeat_seconds()
        while True:
            await asyncio.sleep(interval)
            dead = [w.watch.name for w in self.watchers if not w.alive() and not w.suspended]
            self.health.beat(dead)
            if dead:
                log.error("watcher_dead", watches=dead, action="systemd will restart the daemon")
                continue
            systemd.notify("WATCHDOG=1", f"STATUS={self._status_line()}")

    async def _keep_claims(self) -> None:
        """Renew this node's leases every heartbeat; drop the work of any another node took
        over meanwhile (this node was paused or cut off for longer than a lease). Look
        whether ffmpeg and ffprobe are still here too (`_check_tools`)."""
        while True:
            await asyncio.sleep(self.config.node_heartbeat_seconds)
            self.placement.check_tools()
            try:
                lost = self.store.renew_claims(
                    self.config.node_name, self.config.node_lease_seconds
                )
            except StoreError as exc:
                log.warning("claims_renewal_failed", error=str(exc))
                continue
            for recording_id in lost:
                if recording_id == AFTERMATH_LEADER:  # another node sends the deletions now
                    continue
                log.warning(
                    "lease_lost",
                    recording_id=recording_id,
                    action="another node took this recording over; its work here is dropped",
                )
                active = self._active.get(recording_id)
                if active is not None:
                    active[0].cancel()

    async def _status_updates(self, sent: str) -> None:
        """STATUS= as soon as the counts change (looked at every second), so `systemctl
        status` is never a watchdog interval behind."""
        while True:
            await asyncio.sleep(STATUS_SECONDS)
            line = self._status_line()
            if line != sent:
                systemd.notify(f"STATUS={line}")
                sent = line

    def _status_line(self) -> str:
        try:
            counts = self.store.counts_by_state()
        except StoreError as exc:  # the heartbeat goes on; systemd shows why
            return f"state store unavailable: {exc}"
        busy = sum(counts.get(str(s), 0) for s in PIPELINE)
        missing = list((getattr(self, "folders", None) and self.folders.missing) or ())
        tools = getattr(self, "placement", None) and self.placement.missing_tools
        return (
            f"{busy} in progress, {counts.get('done', 0)} done, "
            f"{counts.get('failed', 0)} failed, {len(self.settler)} settling"
            + (f"; watch folder missing: {', '.join(missing)}" if missing else "")
            + (f"; cannot run {', '.join(tools)}" if tools else "")
        )

    # -- dispatching ---------------------------------------------------------------------

    async def _dispatch_loop(self) -> None:
        # Recordings due but not started (waiting for a job slot, a turn, a preparing slot)
        # are looked at again this soon, unless a change wakes the dispatcher first. Alone
        # on its store (SQLite), every change that could start one wakes it (`on_change`,
        # `on_new`, a drive's end); other nodes' changes do not, so a shared store is asked
        # often (another node's finished job frees a slot of the shared limit).
        due_recheck = DUE_RECHECK_SECONDS if self.config.state_path is not None else 0.05
        while not self._stopping.is_set():
            self._kick.clear()
            wakeup = self._dispatch_once()
            timeout = 5.0 if wakeup is None else min(5.0, max(due_recheck, wakeup - time.time()))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):  # no task of its own, as wait_for makes
                    await self._kick.wait()

    def _dispatch_once(self) -> float | None:
        """Start what may run now; the earliest back-off deadline (to wake up then)."""
        self.placement.new_round()
        limit = self.pipeline.job_limit(planning=True)
        outlook = self.store.outlook()
        # and those dispatched by an earlier round whose task has not reached submitting yet
        started = sum(1 for _, state in self._active.values() if state is State.QUEUED)
        in_flight = outlook.in_flight + started
        # Probes and transcodes are CPU work: a few at a time get the first recordings to the
        # API at once, where starting a whole batch together would starve the event loop.
        preparing_limit = 2 * self.config.pipeline.transcode_workers
        preparing = sum(1 for _, state in self._active.values() if state in PREPARING)
        hold = OrderingHold(
            self.pipeline.watches,
            self.plugins,
            self.settler.settling,
            self.intake.unrecorded,
            self._ordering_reported,
        )
        # States it would skip anyway are not asked for: with a backlog of thousands queued
        # and every job slot taken, each state change would otherwise read 500 queued rows.
        skip = (State.QUEUED,) if in_flight >= limit else ()
        skip += PREPARING if preparing >= preparing_limit else ()
        wanted = [s for s in PIPELINE if s not in skip]
        for row_id, state in self.store.runnable(time.time(), states=wanted):
            if row_id in self._active or (state is State.QUEUED and in_flight >= limit):
                continue
            if state in PREPARING:
                if preparing >= preparing_limit:
                    continue
                preparing += 1
            row = self.pipeline.current(row_id)
            if state is State.QUEUED and (self.store.earlier_part_pending(row) or hold.holds(row)):
                continue
            claimed = self._claim(row)
            if claimed is None:
                if state in PREPARING:
                    preparing -= 1
                continue
            claim, row = claimed
            if state is State.QUEUED:
                in_flight += 1
            task = asyncio.create_task(self._drive(row, claim))
            self._active[row.id] = (task, row.state)
        return outlook.next_wakeup

    def _claim(self, row: RecordingRow) -> tuple[Claim, RecordingRow] | None:
        """Claim `row` for this node: the claim and the row to drive, or None: another node
        drives it, or this node should not (`ingestd.placement`: its folder or tools are not
        here, it drains, ...)."""
        if not self.placement.may_claim(row):
            return None
        claim = self.store.claim(row.id, self.config.node_name, self.config.node_lease_seconds)
        if claim is None:
            return None
        if self.membership.draining and claim.previous_node != self.config.node_name:
            self.store.unclaim(row.id)  # drained since this round read the claims
            return None
        if claim.previous_node not in (None, self.config.node_name):
            # Another node drove it last, perhaps a stage further since this round read it
            # (between that read and this claim): drive it as it stands, or not now.
            fresh = self.pipeline.current(row.id)
            if fresh.state is not row.state or fresh.next_attempt_at > time.time():
                self.store.unclaim(row.id)
                self._kick.set()  # the next round sees it as it is now
                return None
            row = fresh
        if claim.adopted_from is not None:
            log.info(
                "work_adopted",
                recording_id=row.id,
                from_node=claim.adopted_from,
                state=str(row.state),
                epoch=claim.epoch,
            )
            self.pipeline.adopted(row)
        return claim, row

    async def _drive(self, row: RecordingRow, claim: Claim) -> None:
        """Run a recording's stages back to back until it must wait or is finished; then
        let go of its claim, so any node may run its next stage."""
        try:
            with structlog.contextvars.bound_contextvars(
                recording_id=row.id,
                watch=row.watch,
                path=row.relpath,
                conversation_id=row.conversation_id,
            ):
                while True:
                    self._active[row.id] = (self._active[row.id][0], row.state)
                    row = await self.pipeline.run_stage(row)
                    if (
                        row.state not in PIPELINE
                        or row.state is State.QUEUED
                        or row.next_attempt_at > time.time()
                        or self._stopping.is_set()
                    ):
                        break
        except asyncio.CancelledError:
            log.info("stage_interrupted", recording_id=row.id, state=str(row.state))
        except LeaseLost as exc:  # paused or cut off past the lease: another node has it
            log.warning("lease_lost", recording_id=row.id, state=str(row.state), error=str(exc))
        except IngestdError as exc:  # the store itself failed: stop, systemd restarts us
            log.error("store_failed", error=str(exc))
            self._store_failure = self._store_failure or exc
            self._stopping.set()
        finally:
            self._active.pop(row.id, None)
            try:
                self.store.release(claim.recording_id)
            except StoreError as exc:  # its lease runs out by itself
                log.warning("claim_release_failed", recording_id=row.id, error=str(exc))
            self._kick.set()

    # -- shutdown ------------------------------------------------------------------------

    async def _shutdown(self) -> None:
        systemd.notify("STOPPING=1")
        self.health.stopping()
        for watcher in self.watchers:
            watcher.stop()
        for task in self._background:
            task.cancel()
        for task, state in list(self._active.values()):
            if state in _CANCEL_AT_ONCE:
                task.cancel()
        pending = [task for task, _ in self._active.values()]
        if pending:
            grace = self.config.pipeline.shutdown_grace_seconds
            log.info("shutdown_draining", tasks=len(pending), grace_s=grace)
            _, still = await asyncio.wait(pending, timeout=grace)
            for task in still:
                task.cancel()
            if still:
                await asyncio.wait(still, timeout=5)
        await asyncio.gather(*self._background, return_exceptions=True)
        for sink in self.sinks.values():
            with contextlib.suppress(Exception):
                await sink.aclose()
        if self.metrics is not None:
            self.metrics.stop()
        if self.dashboard is not None:
            self.dashboard.stop()
        log.info("daemon_stopped", unfinished=self.store.count_states(PIPELINE))
