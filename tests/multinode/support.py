"""Several real daemons (subprocesses) on one PostgreSQL database, and what they did.

A `Cluster` is one installation shared by its nodes: one ``state.url``, one watched folder
(mapped: each sub-folder is one conversation, its parts appended in name order), one sandbox
in the test process (which outlives every node and counts every submission). Each `Node` has
its own ``node.name``, work dir, config file, log and results folder (a files sink of its
own, so what each node delivered can be told apart).

Every figure is counted where it cannot be faked: jobs and their order at the sandbox,
states in the database, insights files on disk, events in each node's own log.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import psycopg
import yaml
from psycopg.rows import dict_row

from ingestd import mediagen
from ingestd.testing import DaemonProcess, sha256_of, wait_for

TERMINAL = ("done", "failed", "rejected", "duplicate", "dismissed")
HEARTBEAT_SECONDS = 0.5
LEASE_SECONDS = 3.0
"""Node timing in these tests: a dead or silent node's work is taken over within seconds."""


def merged(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """`base` with `overrides`: sections (dicts) merged one level deep, the rest replaced."""
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


# -- media -------------------------------------------------------------------------------------


@dataclass
class Arrival:
    """One file to drop into the shared folder."""

    relpath: str
    staged: Path
    sha256: str
    as_is: bool
    """Uploaded as it is (the sandbox sees its bytes); False: transcoded first (flac)."""

    @property
    def conversation(self) -> str:
        """The conversation's name at the sandbox: the folder's, or the file's stem."""
        parent = PurePosixPath(self.relpath).parent.as_posix()
        return PurePosixPath(parent).name if parent != "." else PurePosixPath(self.relpath).stem

    @property
    def folder(self) -> str | None:
        parent = PurePosixPath(self.relpath).parent.as_posix()
        return None if parent == "." else parent


def make_batch(
    staging: Path, singles: int, meetings: int, parts: int, *, flac_every: int = 5
) -> list[Arrival]:
    """`singles` one-file conversations (every `flac_every`-th a flac, transcoded; the rest
    wav or mp3, sent as they are) and `meetings` sub-folders of `parts` parts each (wav and
    mp3, so the sandbox's sha256 of each part names it). Tiny, distinct, made by ffmpeg."""
    staging.mkdir(parents=True, exist_ok=True)
    plan: list[tuple[str, str]] = []  # (relpath, suffix)
    for i in range(singles):
        suffix = (
            ".flac" if flac_every and i % flac_every == flac_every - 1 else (".wav", ".mp3")[i % 2]
        )
        plan.append((f"call-{i:04d}{suffix}", suffix))
    for m in range(meetings):
        for p in range(1, parts + 1):
            suffix = (".wav", ".mp3")[(m + p) % 2]
            plan.append((f"meet-{m:03d}/part-{p:02d}{suffix}", suffix))

    def make(item: tuple[int, tuple[str, str]]) -> Arrival:
        i, (relpath, suffix) = item
        path = staging / relpath.replace("/", "__")
        mediagen.make_audio(path, seconds=0.3, frequency_hz=150 + 7 * i, seed=i + 1)
        return Arrival(relpath, path, sha256_of(path), as_is=suffix != ".flac")

    with ThreadPoolExecutor(4) as pool:
        batch = list(pool.map(make, enumerate(plan)))
    shas = Counter(a.sha256 for a in batch)
    assert max(shas.values()) == 1, "every file's bytes are distinct"
    return batch


def drop(arrival: Arrival, inbox: Path) -> None:
    """Move a finished file into the shared folder atomically."""
    target = inbox / arrival.relpath
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(arrival.staged, target)


def by_conversation(batch: Iterable[Arrival]) -> dict[str, list[Arrival]]:
    """conversation name -> its parts in append (name) order."""
    out: dict[str, list[Arrival]] = {}
    for a in sorted(batch, key=lambda a: a.relpath):
        out.setdefault(a.conversation, []).append(a)
    return out


# -- the database ------------------------------------------------------------------------------


def query(url: str, sql: str, args: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    """Rows of one query on a connection of its own ([] while the tables are not made)."""
    with psycopg.connect(url, autocommit=True, row_factory=dict_row, connect_timeout=5) as conn:
        try:
            return list(conn.execute(sql, args))
        except psycopg.errors.UndefinedTable:
            return []


# -- nodes -------------------------------------------------------------------------------------


class MachineLocal(DaemonProcess):
    """The daemon in a mount namespace of its own where `private` is bind-mounted over
    `shared`: each node configures the same ``work_dir`` (as the README's two machines do)
    and sees only its own there, as on a machine of its own. A work file another node made
    is not there, so taking such a recording over means making it again."""

    def __init__(self, config_path: Path, log_path: Path, private: Path, shared: Path) -> None:
        super().__init__(config_path, log_path)
        self.private, self.shared = private, shared

    def start(self) -> MachineLocal:
        self._offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        mount = 'mount --bind "$1" "$2" && shift 2 && exec "$@"'
        argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", mount, "sh"]
        argv += [str(self.private), str(self.shared)]
        argv += [sys.executable, "-m", "ingestd.cli", "run", "--config", str(self.config_path)]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, env=self.env
            )
        return self


class Node:
    """One daemon of the cluster, restarted as often as the test likes; its log spans every
    run (`events`), its `daemon` is the current run; `work_dir` is where its work files
    really are (machine-local or not)."""

    def __init__(self, cluster: Cluster, name: str, state_url: str | None = None) -> None:
        self.cluster = cluster
        self.name = name
        self.root = cluster.root / "nodes" / name
        self.root.mkdir(parents=True, exist_ok=True)
        self.work_dir = self.root / "work"
        self.work_dir.mkdir(exist_ok=True)
        self.results = cluster.results / name
        self.config_path = self.root / "ingestd.yaml"
        self.log_path = self.root / "daemon.log"
        self.state_url = state_url or cluster.state_url
        self.overrides: dict[str, Any] = {}
        self.daemon: DaemonProcess | None = None
        self.starts = 0
        self.kills = 0

    def config(self) -> dict[str, Any]:
        base = {
            "symbl": {
                "base_url": self.cluster.sandbox.url,
                "app_id": "sandbox",
                "app_secret": "sandbox",
                "max_concurrent_jobs": self.cluster.limit,
                "poll_initial_seconds": 0.05,
                "poll_max_seconds": 0.3,
            },
            "state": {"url": self.state_url, "work_dir": str(self.configured_work_dir)},
            "node": {
                "name": self.name,
                "heartbeat_seconds": HEARTBEAT_SECONDS,
                "lease_seconds": LEASE_SECONDS,
            },
            "watch": [
                {
                    "name": "inbox",
                    "path": str(self.cluster.inbox),
                    "settle_seconds": 0.5,
                    "patterns": ["*.wav", "*.mp3", "*.flac"],
                    "conversation": {"by": "folder"},
                }
            ],
            "sinks": [{"type": "files", "path": str(self.results)}],
            "pipeline": {
                "retry_initial_seconds": 0.1,
                "retry_max_seconds": 1,
                "rescan_interval_seconds": 5,
                "shutdown_grace_seconds": 2,
            },
            "logging": {"format": "json", "level": "info"},
        }
        return merged(merged(base, self.cluster.overrides), self.overrides)

    @property
    def configured_work_dir(self) -> Path:
        """``state.work_dir`` in its config: the cluster's one path (each node sees its own
        there) when machine-local, else its own folder."""
        return self.cluster.work_dir if self.cluster.machine_local else self.work_dir

    def start(self) -> Node:
        assert not self.running, f"{self.name} already runs"
        self.config_path.write_text(yaml.safe_dump(self.config()))
        if self.cluster.machine_local:
            self.daemon = MachineLocal(
                self.config_path, self.log_path, self.work_dir, self.cluster.work_dir
            ).start()
        else:
            self.daemon = DaemonProcess(self.config_path, self.log_path).start()
        self.starts += 1
        return self

    def wait_ready(self, timeout: float = 60) -> Node:
        assert self.daemon is not None
        try:
            self.daemon.wait_ready(timeout)
        except AssertionError as exc:
            raise AssertionError(f"{self.name}: {exc}") from None
        return self

    @property
    def running(self) -> bool:
        return self.daemon is not None and self.daemon.process.poll() is None  # type: ignore[union-attr]

    @property
    def pid(self) -> int:
        assert self.daemon is not None and self.daemon.process is not None
        return self.daemon.process.pid

    def kill(self) -> None:
        assert self.daemon is not None
        self.daemon.kill()
        self.kills += 1

    def signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def pause(self) -> None:
        self.signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.signal(signal.SIGCONT)

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM this run and wait; its exit status."""
        assert self.daemon is not None
        return self.daemon.stop(timeout=timeout)

    def events(self) -> list[dict[str, Any]]:
        """Every JSON event of every run of this node."""
        if not self.log_path.exists():
            return []
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(event, dict):
                out.append(event)
        return out

    def where(self, name: str, **facts: Any) -> list[dict[str, Any]]:
        return [
            e
            for e in self.events()
            if e.get("event") == name and all(e.get(k) == v for k, v in facts.items())
        ]

    def log_tail(self, chars: int = 3000) -> str:
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-chars:]


class Cluster:
    """Nodes sharing one database, one watched folder and one sandbox."""

    def __init__(
        self, root: Path, sandbox: Any, state_url: str, *, limit: int = 3, machine_local: bool
    ) -> None:
        self.root = root
        self.sandbox = sandbox
        self.state_url = state_url
        self.limit = limit
        """The daemons' ``max_concurrent_jobs``: the account's, shared by every node."""
        self.inbox = root / "inbox"
        self.results = root / "results"
        self.inbox.mkdir(parents=True, exist_ok=True)
        self.machine_local = machine_local
        """Each node's work dir at one path, its own files only (`MachineLocal`), as on
        machines of their own; False: a folder per node, which every node can read."""
        self.work_dir = root / "work"
        """Every node's ``work_dir`` in its config when machine-local."""
        self.work_dir.mkdir()
        self.overrides: dict[str, Any] = {}
        """Config changes for every node (each node may add its own)."""
        self.nodes: dict[str, Node] = {}

    def add(self, name: str, state_url: str | None = None) -> Node:
        node = Node(self, name, state_url)
        self.nodes[name] = node
        return node

    def start(self, *names: str) -> list[Node]:
        """Start the named nodes (default: all) and wait until each is ready."""
        chosen = [self.nodes[n] for n in names] if names else list(self.nodes.values())
        for node in chosen:
            node.start()
        for node in chosen:
            node.wait_ready()
        return chosen

    def running(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.running]

    def stop_all(self) -> None:
        """Kill whatever still runs (a paused node is woken first, so it can die)."""
        for node in self.nodes.values():
            if node.running:
                with contextlib.suppress(ProcessLookupError):
                    node.resume()
                node.daemon.process.kill()  # type: ignore[union-attr]
                node.daemon.process.wait()  # type: ignore[union-attr]

    # -- the database --------------------------------------------------------------------

    def rows(self) -> list[dict[str, Any]]:
        return query(
            self.state_url,
            "SELECT id, relpath, state, sha256, conversation_key, sort_key, conversation_id,"
            " job_id, attempts, error FROM recordings ORDER BY id",
        )

    def states(self) -> dict[str, str]:
        """relpath -> the state of its latest version."""
        return {r["relpath"]: r["state"] for r in self.rows()}

    def claims(self) -> list[dict[str, Any]]:
        """Every claim held now (not let go of: a released claim keeps its row with
        ``expires_at`` 0), with its recording's relpath and state, and whether its lease ran
        out (``expired``, on the server's clock)."""
        return query(
            self.state_url,
            "SELECT c.recording_id, c.node, c.epoch, c.expires_at, r.relpath, r.state,"
            " c.expires_at <= EXTRACT(EPOCH FROM clock_timestamp()) AS expired"
            " FROM claims c JOIN recordings r ON r.id = c.recording_id"
            " WHERE c.expires_at > 0 ORDER BY c.recording_id",
        )

    def wait_terminal(self, relpaths: Iterable[str], timeout: float) -> dict[str, str]:
        """Wait until every named file's latest version is terminal; relpath -> state."""
        names = list(relpaths)

        def settled() -> bool:
            states = self.states()
            return all(states.get(n) in TERMINAL for n in names)

        try:
            wait_for(settled, timeout, f"{len(names)} files to reach a terminal state", 0.3)
        except AssertionError:
            states = self.states()
            open_ = {n: states.get(n) for n in names if states.get(n) not in TERMINAL}
            raise AssertionError(
                f"not terminal after {timeout:.0f} s: {dict(list(open_.items())[:20])}"
                f"\nclaims: {self.claims()[:20]}\n{self.log_tails()}"
            ) from None
        return self.states()

    # -- what the nodes did --------------------------------------------------------------

    def events(self, name: str, **facts: Any) -> list[dict[str, Any]]:
        """Event `name` from every node's log, each with ``_node`` set to the node's name."""
        return [{**e, "_node": n.name} for n in self.nodes.values() for e in n.where(name, **facts)]

    def log_tails(self, chars: int = 2500) -> str:
        return "\n".join(
            f"--- {n.name} log tail:\n{n.log_tail(chars)}" for n in self.nodes.values()
        )

    def delivered(self) -> dict[str, list[dict[str, Any]]]:
        """conversation_id -> every insights.json written for it, by any node (each with
        ``_node``)."""
        out: dict[str, list[dict[str, Any]]] = {}
        for node in self.nodes.values():
            for path in node.results.rglob("insights.json"):
                data = json.loads(path.read_text())
                data["_node"] = node.name
                out.setdefault(data["ingestd"]["conversation_id"], []).append(data)
        return out


# -- the verdict -------------------------------------------------------------------------------


def created(sandbox: Any) -> list[dict[str, Any]]:
    """Submissions that created a job at the sandbox (answered or not), in arrival order."""
    return sorted((s for s in sandbox.submissions() if s["created"]), key=lambda s: s["seq"])


def check_once_in_order(
    cluster: Cluster, batch: list[Arrival], *, timeout: float
) -> dict[str, Any]:
    """Wait for every file to be terminal, then check, counting at the sandbox: every file
    done and submitted exactly once (an append at most once more where a node said it sends it
    again, ``append_reconcile_unknown``); each conversation made by one POST, its parts appended
    in name order; the account's limit held; insights delivered for each conversation with
    all its parts in order. Returns the figures; raises AssertionError listing what broke."""
    sandbox = cluster.sandbox
    states = cluster.wait_terminal([a.relpath for a in batch], timeout)
    made = created(sandbox)
    by_sha = Counter(s["sha256"] for s in made)
    posts = Counter((s.get("params") or {}).get("name") for s in made if s["method"] == "POST")
    puts = Counter(s["conversationId"] for s in made if s["method"] == "PUT")
    conversations = sandbox.conversations()
    rows = {r["relpath"]: r for r in cluster.rows()}
    delivered = cluster.delivered()
    stats = sandbox.stats()
    groups = by_conversation(batch)
    # The one documented exception to "once": an append whose answer was lost (or whose
    # node died after sending it) cannot be looked up, so it is sent again and says so
    # (README, "append_reconcile_unknown"): at most once more per such event.
    resent = Counter(e.get("path") for e in cluster.events("append_reconcile_unknown"))
    appends = {p.relpath for parts in groups.values() for p in parts[1:]}
    problems: list[str] = []

    not_done = {a.relpath: states.get(a.relpath) for a in batch if states.get(a.relpath) != "done"}
    if not_done:
        problems.append(f"not done: {dict(list(not_done.items())[:20])}")
    doubled = {
        a.relpath: by_sha[a.sha256]
        for a in batch
        if a.as_is
        and not 1 <= by_sha[a.sha256] <= 1 + (resent[a.relpath] if a.relpath in appends else 0)
    }
    if doubled:
        problems.append(f"files whose bytes created a job other than once: {doubled}")
    extra_appends = sum(by_sha[a.sha256] - 1 for a in batch if a.relpath in appends)
    wrong_posts = {name: posts[name] for name in groups if posts[name] != 1}
    if wrong_posts:
        problems.append(f"conversations not made by exactly one POST: {wrong_posts}")
    extra = sorted(set(posts) - set(groups))
    if extra:
        problems.append(f"POSTs for no file of the batch: {extra}")
    if len(made) != len(batch) + extra_appends:
        problems.append(
            f"{len(made)} jobs created at the sandbox for {len(batch)} files"
            f" ({extra_appends} appends sent again)"
        )
    out_of_order: dict[str, Any] = {}
    for name, parts in groups.items():
        if len(parts) == 1:
            row = rows.get(parts[0].relpath)
            if row is None or row["conversation_id"] not in delivered:
                problems.append(f"{parts[0].relpath}: no insights.json for its conversation")
            continue
        cids = {rows[p.relpath]["conversation_id"] for p in parts if p.relpath in rows}
        if len(cids) != 1:
            problems.append(f"{name}: its parts went to {len(cids)} conversations: {cids}")
            continue
        [cid] = cids
        again = sum(by_sha[p.sha256] - 1 for p in parts[1:])
        if puts[cid] != len(parts) - 1 + again:
            problems.append(f"{name}: {puts[cid]} appends (PUT) for {len(parts)} parts")
        seen = [p["sha256"] for p in conversations.get(cid, {}).get("parts", [])]
        # an append sent again lands right after itself: the next part waits for it
        seen = [sha for i, sha in enumerate(seen) if i == 0 or seen[i - 1] != sha]
        expected = [p.sha256 for p in parts]
        if seen != expected:
            names = {p.sha256: p.relpath for p in parts}
            out_of_order[name] = [names.get(s, s[:8]) for s in seen]
        files = delivered.get(cid, [])
        last = max(files, key=lambda d: len(d["ingestd"]["parts"]), default=None)
        if last is None or [p["relpath"] for p in last["ingestd"]["parts"]] != [
            p.relpath for p in parts
        ]:
            problems.append(f"{name}: no insights.json listing all its parts in order")
    if out_of_order:
        problems.append(f"parts appended out of name order: {out_of_order}")
    # The limit binds the jobs the nodes know of. The first job of an append sent again is
    # known to no node (its answer never came), so it runs beside the limit's jobs: left out
    # of the peak that must keep to the limit, and counted in the raw one.
    known = {r["job_id"] for r in rows.values()}
    resent_shas = {a.sha256 for a in batch if a.relpath in appends and by_sha[a.sha256] > 1}
    orphans = {
        j["id"] for j in sandbox.jobs() if j["sha256"] in resent_shas and j["id"] not in known
    }
    peak, ids = concurrency(sandbox, orphans)
    raw_peak = stats["max_concurrent_jobs_seen"]
    if peak > cluster.limit or raw_peak > cluster.limit + len(orphans):
        jobs = {j["id"]: j for j in sandbox.jobs()}
        names = {a.sha256: a.relpath for a in batch}
        at_peak = [
            (names.get(jobs[i]["sha256"], jobs[i]["sha256"][:8]), i in known, jobs[i]["history"])
            for i in ids
        ]
        problems.append(
            f"peak concurrent jobs at the sandbox {peak} (raw {raw_peak}, {len(orphans)} jobs"
            f" of appends sent again) > limit {cluster.limit}:"
            f" (file, job known to the store, history) {at_peak}"
        )
    figures = {
        "files": len(batch),
        "conversations": len(groups),
        "jobs_created": len(made),
        "posts": sum(posts.values()),
        "puts": sum(puts.values()),
        "appends_sent_again": extra_appends,
        "peak_concurrent_jobs": peak,
        "peak_concurrent_jobs_raw": raw_peak,
        "limit": cluster.limit,
        "status_429": sum(
            by_status.get("429", 0) for by_status in stats.get("requests", {}).values()
        ),
        "insights_files_by_node": dict(
            Counter(d["_node"] for files in delivered.values() for d in files)
        ),
    }
    if problems:
        raise AssertionError("\n".join(problems) + f"\nfigures: {figures}\n{cluster.log_tails()}")
    return figures


def concurrency(sandbox: Any, leave_out: set[str] = frozenset()) -> tuple[int, list[str]]:
    """The most jobs the sandbox had running at once (from each job's status history), and
    their ids at the first such moment; jobs in `leave_out` are not counted."""
    edges: list[tuple[float, int, str]] = []
    for job in sandbox.jobs():
        if job["id"] in leave_out:
            continue
        history = job["history"]
        edges.append((history[0]["at"], 1, job["id"]))
        ends = [h["at"] for h in history if h["status"] in ("completed", "failed")]
        if ends:
            edges.append((ends[0], -1, job["id"]))
    running: set[str] = set()
    peak, at_peak = 0, []
    for _, step, job_id in sorted(edges, key=lambda e: (e[0], e[1])):  # ends first on ties
        if step > 0:
            running.add(job_id)
        else:
            running.discard(job_id)
        if len(running) > peak:
            peak, at_peak = len(running), sorted(running)
    return peak, at_peak
