"""What ingestd needs from a state store: the `Store` protocol and the rows it returns.

The core (daemon, pipeline, intake, transitions, commands, metrics, dashboard) types
against `Store`; `ingestd.store.sqlite.SqliteStore` implements it, and `open_store` opens
the one the configuration names. A PostgreSQL store (several nodes, claims and leases) is
meant to implement the same protocol, as procrastinate's connectors do. The contract:

- **State changes go through `transition` alone.** It checks the change against
  `ingestd.lifecycle.TRANSITIONS`, refuses a recording that is no longer in the state the
  caller read (``expected``), and commits the change with its event and any mapping or
  outbox rows that go with it, or writes nothing. `ingestd.transitions.Transitions` is its
  only caller outside the store; `insert` records a file in its first state.
- **Every other write is an explicit method with one purpose** (`update` for columns that
  are not the state, `mark_delivery`, the mapping and operator tables), committed when it
  returns, so the caller's next side effect happens only once the write is durable.
- **Reads are explicit methods**, each answering one question; no SQL leaves the store.
- **Errors are `StoreError`**, naming the database and what to do; ``transient`` when the
  same write may succeed later (full disk, lock, I/O). A failed write changes nothing.
- **One thread per store object** (the event loop's); other threads open a `reader`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ingestd.lifecycle import PIPELINE, Deletion, Disposal, State
from ingestd.watch import unescape_fs


@dataclass(frozen=True)
class RecordingRow:
    """One recording as the store holds it, JSON columns decoded."""

    id: int
    watch: str
    watch_root: str
    relpath: str
    size_bytes: int
    mtime: float
    sha256: str
    state: State
    failed_from: str | None
    error: str | None
    attempts: int
    next_attempt_at: float
    duplicate_of: int | None
    conversation_key: str | None
    sort_key: str
    media: dict[str, Any] | None
    upload_path: str | None
    upload_media: dict[str, Any] | None
    upload_size_bytes: int | None
    endpoint: dict[str, Any] | None
    params: dict[str, Any] | None
    name: str | None
    upload_started_at: float | None
    conversation_id: str | None
    job_id: str | None
    insights_path: str | None
    created_at: float
    updated_at: float

    @property
    def path(self) -> Path:
        return Path(self.watch_root) / unescape_fs(self.relpath)  # non-UTF-8 names: escaped


@dataclass(frozen=True)
class NodeInfo:
    """One running daemon as the ``nodes`` table knows it (``node.name`` in the config)."""

    name: str
    instance: str  # random per process start: tells this run from an earlier one
    host: str
    pid: int


@dataclass(frozen=True)
class Claim:
    """This node's claim on a recording it is about to drive (`Store.claim`).

    ``epoch`` is the fencing token: every write this store makes for the recording while it
    holds the claim checks it, so a node whose lease ran out cannot overwrite the node that
    took over. ``adopted_from`` names the node whose lease ran out while it held the
    recording (failover), None for a recording nobody was driving."""

    recording_id: int
    node: str
    epoch: int
    adopted_from: str | None = None
    previous_node: str | None = None  # the node that drove it last, whether or not it let go


@dataclass(frozen=True)
class Outlook:
    """`Store.outlook`: the jobs in flight at the API (every node's), and the earliest
    back-off deadline among non-terminal recordings (None: none)."""

    in_flight: int
    next_wakeup: float | None


class AlreadyRecorded(Exception):
    """`Store.insert` of a file whose latest recording has the same content: another node
    watching the same folder recorded it first. Nothing was written."""

    def __init__(self, row: RecordingRow) -> None:
        super().__init__(f"{row.watch}/{row.relpath} is recorded already (recording {row.id})")
        self.row = row


class JobSlotTaken(Exception):
    """`Store.transition` to ``submitting`` refused: the account's job limit is reached, or
    an earlier part of the conversation has still to be submitted (another node moved
    first). Nothing was written; the recording stays queued."""


@dataclass(frozen=True)
class StoreSnapshot:
    """What a metrics scrape needs from the store, read in one transaction."""

    states: dict[str, int] = field(default_factory=dict)
    deliveries: dict[tuple[str, str], int] = field(default_factory=dict)
    oldest_unfinished_at: float | None = None  # created_at of the oldest non-terminal row
    nodes: tuple[dict[str, Any], ...] = ()  # `Store.nodes` (none on SQLite)
    claims: dict[int, dict[str, Any]] = field(default_factory=dict)  # `Store.claims`


class Store(Protocol):
    """Recordings, their events, the conversation mapping, the per-sink outbox and the
    operator tables (dispositions, API deletions). See the module docstring for the rules
    every implementation keeps."""

    where: str
    """Where the state lives, for messages: a file path, a database URL without secrets."""

    def check(self) -> None:
        """Raise a StoreError unless every page of the database reads back sane.

        SQLite finds damage only on the pages a query happens to read, so a daemon could
        run for a while on a corrupt file and write into it. ``PRAGMA quick_check`` reads
        the whole file (~0.2 s per 75 MB): for the daemon's start, not every CLI command."""
        ...

    def close(self) -> None: ...

    def get(self, recording_id: int) -> RecordingRow: ...

    def insert(
        self,
        *,
        watch: str,
        watch_root: str,
        relpath: str,
        size_bytes: int,
        mtime: float,
        sha256: str,
        state: State = State.DISCOVERED,
        duplicate_of: int | None = None,
        sort_key: str = "",
        conversation_key: str | None = None,
        pinned_conversation: str | None = None,
    ) -> RecordingRow:
        """Record a settled file; committed before anything is done with it.

        The recording, its conversation key and the key's pinned conversation (a
        ``conversation:<id>`` key) are one commit, so the ordering gate
        (`earlier_part_pending`) never sees the row without its key. Raises
        `AlreadyRecorded` when the path's latest recording has the same content (nodes
        watching one shared folder: whichever records the file first has it)."""
        ...

    def latest_for_path(self, watch: str, relpath: str) -> RecordingRow | None: ...

    def known_files(self, watch: str) -> dict[str, tuple[int, float]]:
        """relpath -> (size, mtime) of the latest version of each file, for fast rescans."""
        ...

    def original_of(self, size_bytes: int, sha256: str) -> RecordingRow | None:
        """The first recording with this fingerprint that is neither a duplicate nor dismissed."""
        ...

    def transition(
        self,
        recording_id: int,
        new: State,
        *,
        facts: dict[str, Any] | None = None,
        mapping: tuple[str, str, str | None] | None = None,
        unmap: tuple[str, str] | None = None,
        deliveries: Iterable[str] = (),
        expected: State | None = None,
        job_limit: int | None = None,
        **columns: Any,
    ) -> RecordingRow:
        """Move a recording to `new`, checked against the lifecycle table, in one commit.

        A change the table does not allow, or a recording no longer in `expected` (moved by
        another process meanwhile), raises `TransitionError` and writes nothing. A write for
        a recording this store claimed checks the claim first (`claim`): `LeaseLost`.

        Args:
            expected: the state the caller saw; None to skip that check.
            job_limit: for ``queued -> submitting``: refuse (`JobSlotTaken`) when this many
                recordings are in flight already, or an earlier part of the conversation is
                still to be submitted; checked in the same transaction, so nodes sharing the
                database never exceed the account's limit together.
            facts: recorded in the event history (and logged by the caller).
            mapping: (key, conversation_id, name) to persist in the same commit.
            unmap: (key, conversation_id) to forget in the same commit, if still so mapped.
            deliveries: sink names whose outbox entries start pending in the same commit.
            columns: recording columns to set; attempts and error reset unless given."""
        ...

    def update(self, recording_id: int, **columns: Any) -> RecordingRow:
        """Change columns without a state change (attempts, back-off, upload start)."""
        ...

    def runnable(
        self, now: float, limit: int = 500, states: Iterable[State] = PIPELINE
    ) -> list[tuple[int, State]]:
        """(id, state) of the recordings in `states` whose next stage may run now, oldest
        first.

        Only ids and states: the dispatcher asks on every state change, and most answers are
        recordings it is already driving or that wait for a job slot, so it loads (`get`)
        just the ones it starts; it leaves out the states it cannot start now (a backlog of
        queued recordings while every job slot is taken)."""
        ...

    def outlook(self) -> Outlook:
        """What the dispatcher reads every round, in one query: the jobs in flight (every
        node's) and the earliest back-off deadline among non-terminal recordings."""
        ...

    def needs_upload_file(self, recording_id: int) -> bool:
        """True while the recording may still upload (or re-upload) its work file."""
        ...

    def count_states(self, states: Iterable[State]) -> int: ...

    def lowered_job_limit(self, backend: str) -> tuple[int, float] | None:
        """(lowered to, when) of `backend`'s job limit after a 429 (`ingestd.joblimit`)."""
        ...

    def lower_job_limit(self, backend: str, to: int, now: float) -> None:
        """Record that `backend`'s account took only `to` jobs at `now` (a 429)."""
        ...

    def earlier_part_pending(self, row: RecordingRow) -> bool:
        """True while an earlier part of the same conversation has not been submitted yet."""
        ...

    def parts_of(self, conversation_id: str) -> list[RecordingRow]:
        """The recordings of a conversation whose jobs completed, in append order.

        That includes the ones that failed after their job completed (while fetching or
        delivering): they are part of the conversation, and `ingestd retry` or
        `ingestd redeliver` finishes them without submitting them again."""
        ...

    def known_conversation_ids(self) -> set[str]: ...

    def recent_keys(self, prefix: str, since_mtime: float) -> list[tuple[str, float]]:
        """`ingestd.registry.MappingHistory`: keys by prefix, newest file mtime first."""
        ...

    def pin_conversation(self, key: str, conversation_id: str) -> None:
        """Map a key to an existing conversation (appends go there; nothing is POSTed)."""
        ...

    def conversation_for(self, key: str) -> str | None: ...

    def set_mapping(self, key: str, conversation_id: str) -> None:
        """Point a key at a conversation (operator's `ingestd map set`)."""
        ...

    def delete_mapping(self, key: str) -> bool: ...

    def mappings(self) -> list[dict[str, Any]]: ...

    def deliveries(self, recording_id: int) -> list[dict[str, Any]]: ...

    def previous_receipts(self, conversation_id: str) -> dict[str, dict[str, Any]]:
        """sink -> receipt detail of its latest successful delivery of this conversation.

        Only a success writes `detail`, and requeueing a delivery (`transition` with
        ``deliveries``: a retry or a redelivery) keeps it, so the receipt is found whatever
        state the delivery is in now: a redelivered Slack message is updated, not posted again."""
        ...

    def delivery_counts(self) -> dict[str, dict[str, int]]:
        """sink -> {pending, done, failed: count}, for status and metrics."""
        ...

    def mark_delivery(self, recording_id: int, sink: str, **columns: Any) -> None: ...

    def counts_by_state(self) -> dict[str, int]: ...

    def latest(self, states: Iterable[State], limit: int = 10) -> list[RecordingRow]: ...

    def all(self) -> list[RecordingRow]: ...

    def failed_jobs(self, recording_id: int) -> int:
        """Jobs of this recording the API failed since an operator last retried it: the
        submitted -> queued changes after its last way out of ``failed``."""
        ...

    def events(self, recording_id: int) -> list[dict[str, Any]]: ...

    def reader(self) -> Store:
        """A read-only store on a connection of its own, for a thread other than the event
        loop's (the metrics and dashboard servers); close it after use. Any write through
        it fails instead of taking a lock, and reading never blocks the daemon's writer."""
        ...

    def snapshot(self) -> StoreSnapshot:
        """Counts for a metrics scrape, read in one consistent transaction."""
        ...

    def search(
        self,
        *,
        states: Sequence[str] = (),
        watch: str | None = None,
        since: float | None = None,
        until: float | None = None,
        text: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[RecordingRow], int]:
        """Recordings newest first, filtered, one page; and how many match in all.

        `text` matches name, path and error (case-insensitive substring); `since`/`until`
        bound created_at (UNIX seconds, until exclusive)."""
        ...

    def watch_names(self) -> list[str]: ...

    def in_conversation(self, conversation_id: str) -> list[RecordingRow]:
        """Every recording sent to a conversation, in append order (unlike `parts_of`, also
        those still on their way or failed)."""
        ...

    def entered_state_at(self, recording_ids: Sequence[int]) -> dict[int, float]:
        """recording id -> when it entered its current state (its latest event)."""
        ...

    def failed_deliveries(self, limit: int = 20) -> list[dict[str, Any]]:
        """Deliveries that gave up, newest first, with their recording's conversation."""
        ...

    def versions_of(self, watch: str, relpath: str) -> list[int]:
        """Ids of every recording of this path (each settled version of the file), oldest first."""
        ...

    def events_since(self, after_id: int, states: Iterable[State]) -> list[dict[str, Any]]:
        """Events newer than `after_id` into one of `states`, oldest first (with their id)."""
        ...

    def request_deletion(
        self, conversation_id: str, reason: str, recording_id: int | None = None
    ) -> bool:
        """Ask for `conversation_id` to be deleted at the API; False if already asked."""
        ...

    def deletion(self, conversation_id: str) -> dict[str, Any] | None: ...

    def deletions_due(self, now: float) -> list[dict[str, Any]]: ...

    def mark_deletion(self, conversation_id: str, new: Deletion, **columns: Any) -> None:
        """Move a deletion to `new` (checked against `DELETION_TRANSITIONS`)."""
        ...

    def deletions_of(self, conversation_ids: Iterable[str]) -> list[dict[str, Any]]: ...

    def deletion_counts(self) -> dict[str, int]: ...

    def part_states(self, conversation_id: str) -> list[State]:
        """The states of every recording that carries `conversation_id`."""
        ...

    def conversation_in_use(self, conversation_id: str) -> bool:
        """True while a recording carries it or a key maps to it (it may get more parts)."""
        ...

    def unmap_conversation(self, conversation_id: str) -> list[str]:
        """Forget every key that maps to `conversation_id`; the keys it had."""
        ...

    def mapped_keys(self) -> list[dict[str, Any]]:
        """Each mapped key with its conversation, watch, newest recording time and whether a
        recording of it has still to be submitted (for ``close_after_minutes``)."""
        ...

    def close_key(self, key: str, conversation_id: str | None = None) -> str | None:
        """Unmap `key` (only from `conversation_id` when given); the id it mapped to."""
        ...

    def plan_disposal(self, recording_id: int, action: str, target: str | None) -> bool:
        """Record what will be done with a finished recording's file; False if already."""
        ...

    def disposal(self, recording_id: int) -> dict[str, Any] | None: ...

    def disposals_due(self, now: float) -> list[dict[str, Any]]:
        """Dispositions to work on now: planned or half-moved, oldest first."""
        ...

    def mark_disposal(self, recording_id: int, new: Disposal, **columns: Any) -> None:
        """Move a disposition to `new` (checked against `DISPOSAL_TRANSITIONS`)."""
        ...

    def replan_failed_disposals(self) -> int:
        """Failed dispositions start over (`Disposal.FAILED` -> ``planned``): at each start."""
        ...

    def disposal_counts(self) -> dict[str, dict[str, int]]:
        """action -> {state: count}, for status."""
        ...

    def join_node(self, node: NodeInfo, stale_after: float) -> None:
        """Record `node` as running; a StoreError naming the other daemon when a live one
        (a heartbeat within `stale_after` seconds, not a dead process of this host) already
        runs under that name. A drained name stays drained (`set_draining`). SQLite:
        nothing (its file lock admits one daemon)."""
        ...

    def node_heartbeat(self, node: NodeInfo) -> bool:
        """Say `node` is alive; False when its name now belongs to another daemon."""
        ...

    def leave_node(self, node: NodeInfo) -> None:
        """Forget `node` (a clean stop), so its name is free at once; a draining one stays
        listed, stopped (``pid`` None), so that it is still drained when it starts again."""
        ...

    def nodes(self) -> list[dict[str, Any]]:
        """The nodes the store knows, by name: name, host, pid (None: stopped, kept because
        draining), started_at, heartbeat_at, draining."""
        ...

    def set_draining(self, name: str, draining: bool) -> bool:
        """Mark node `name` draining (it finishes the recordings it holds and claims nothing
        new, across its restarts) or not; False when the store knows no such node. Undrain
        forgets a stopped node (kept only for its flag). SQLite: False (no nodes)."""
        ...

    def claims(self) -> dict[int, dict[str, Any]]:
        """recording id -> {node, epoch, expires_at, expires_in_seconds} of every claim: held
        (expires_in_seconds > 0, on the database server's clock, as leases are), run out (a
        node takes it over at its next claim) or let go (``expires_at`` 0: `node` drove it
        last). SQLite: {} (one node, no claims)."""
        ...

    def claim(self, recording_id: int, node: str, lease_seconds: float) -> Claim | None:
        """Claim `recording_id` for `node` to drive its stages, for `lease_seconds` (renewed
        by `renew_claims`); None while another node's lease on it runs. A claim whose lease
        ran out is taken over (``adopted_from``) with a new epoch, which fences the writes of
        the node that held it. SQLite: always granted (one daemon per file)."""
        ...

    def release(self, recording_id: int) -> None:
        """Let go of this store's claim on `recording_id` (its stages wait or ended)."""
        ...

    def unclaim(self, recording_id: int) -> None:
        """Give back a claim this node took only to find it must not run the recording
        (draining; its file is elsewhere): the claim row is as before, so who drove the
        recording last, and whether that node's lease ran out, still show."""
        ...

    def renew_claims(self, node: str, lease_seconds: float) -> list[int]:
        """Extend every claim this store holds by `lease_seconds`; the ids of those another
        node took over meanwhile (their work must be dropped)."""
        ...
