"""The SQLite state store (`SqliteStore`, the `ingestd.store.Store` protocol): WAL,
synchronous=FULL, one commit per state change.

Every method that changes something commits before returning, so the caller's next side
effect (an upload, a sink write) happens only once the change is on disk. Used from the
event-loop thread only; each call is a few milliseconds.

Every sqlite3 error, from any method, arrives as a `StoreError` naming the database file
and what to do (`store_error`): a full disk, a lock held past the busy timeout, corruption.
A failed write changes nothing: its transaction is rolled back.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import fields
from importlib import resources
from pathlib import Path
from typing import Any

from ingestd import jsontext
from ingestd.errors import StoreError
from ingestd.lifecycle import IN_FLIGHT, PIPELINE, State, TransitionError, check_transition
from ingestd.logging import redact
from ingestd.store.base import (
    AlreadyRecorded,
    Claim,
    JobSlotTaken,
    NodeInfo,
    Outlook,
    RecordingRow,
    StoreSnapshot,
)
from ingestd.store.operator import OperatorTables
from ingestd.watch import escape_fs, unescape_fs

SCHEMA_VERSION = 3  # 2: dispositions, api_deletions (ingestd.store.operator); 3: job_limits
BUSY_TIMEOUT_SECONDS = 30.0
"""How long a write waits for another process's lock before it fails."""


_JSON_COLUMNS = {"media", "upload_media", "endpoint", "params"}
_COLUMNS = [f.name for f in fields(RecordingRow)]
_WRITABLE = set(_COLUMNS) - {"id", "created_at", "updated_at", "state"}
_STATES = {str(s): s for s in State}
"""A stored state's name -> `State`: a dict lookup, where calling the enum costs a
microsecond, and `runnable` converts up to 500 per dispatch."""


def _row(raw: sqlite3.Row) -> RecordingRow:
    values = dict(raw)
    for column in _JSON_COLUMNS:
        if values[column] is not None:
            values[column] = jsontext.loads(values[column])
    values["state"] = _STATES[values["state"]]
    if values["upload_path"] is not None:
        values["upload_path"] = unescape_fs(values["upload_path"])
    return RecordingRow(**values)


def _encode(column: str, value: Any) -> Any:
    if column == "error" and value:  # every writer's message, masked once more on its way in
        value = redact(value)
    if column in _JSON_COLUMNS and value is not None:
        return json.dumps(value, sort_keys=True)
    if isinstance(value, str):  # a path with a non-UTF-8 name: SQLite takes only UTF-8
        return escape_fs(value)
    return value


class SqliteStore(OperatorTables):
    """The `ingestd.store.Store` protocol in one SQLite file (WAL), for one machine."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.where = str(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            raw = sqlite3.connect(path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(
                f"cannot open the state database {path}: {exc}; check the path, its "
                f"permissions and free disk space"
            ) from None
        raw.row_factory = sqlite3.Row
        self._conn = _Connection(raw, path)
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except StoreError:
            raw.close()
            raise

    # -- plumbing ------------------------------------------------------------------------

    def _migrate(self) -> None:
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} was written by a newer ingestd (schema {version}); upgrade ingestd"
            )
        if version < SCHEMA_VERSION:
            script = resources.files("ingestd.store").joinpath("schema.sql").read_text()
            self._conn.executescript(
                f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version={SCHEMA_VERSION};\nCOMMIT;"
            )

    def check(self) -> None:
        """Raise a StoreError unless every page of the database reads back sane.

        SQLite finds damage only on the pages a query happens to read, so a daemon could
        run for a while on a corrupt file and write into it. ``PRAGMA quick_check`` reads
        the whole file (~0.2 s per 75 MB): for the daemon's start, not every CLI command.
        """
        problems = [r[0] for r in self._conn.execute("PRAGMA quick_check(3)")]
        if problems != ["ok"]:
            lines = (" ".join(p.replace("*** in database main ***", "").split()) for p in problems)
            raise _corrupt(self.path, "; ".join(line for line in lines if line))  # one line

    def _tx(self) -> Any:
        return _Transaction(self._conn)

    def close(self) -> None:
        self._conn.close()

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        return self._conn.execute(sql, args).fetchall()

    # -- recordings ----------------------------------------------------------------------

    def get(self, recording_id: int) -> RecordingRow:
        rows = self._query("SELECT * FROM recordings WHERE id = ?", (recording_id,))
        if not rows:
            raise KeyError(recording_id)
        return _row(rows[0])

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
        (`earlier_part_pending`) never sees the row without its key.
        """
        now = time.time()
        with self._tx():
            latest = self._conn.execute(
                "SELECT * FROM recordings WHERE watch = ? AND relpath = ? ORDER BY id DESC LIMIT 1",
                (watch, relpath),
            ).fetchone()
            if latest is not None and (latest["sha256"], latest["size_bytes"]) == (
                sha256,
                size_bytes,
            ):
                raise AlreadyRecorded(_row(latest))
            inserted = self._conn.execute(
                "INSERT INTO recordings (watch, watch_root, relpath, size_bytes, mtime, sha256,"
                " state, duplicate_of, sort_key, conversation_key, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *",
                (
                    watch,
                    watch_root,
                    relpath,
                    size_bytes,
                    mtime,
                    sha256,
                    str(state),
                    duplicate_of,
                    sort_key,
                    conversation_key,
                    now,
                    now,
                ),
            ).fetchone()
            recording_id = inserted["id"]
            if conversation_key is not None and pinned_conversation is not None:
                self._conn.defer(
                    "INSERT OR IGNORE INTO conversations (key, conversation_id, name, created_at)"
                    " VALUES (?, ?, NULL, ?)",
                    (conversation_key, pinned_conversation, now),
                )
            self._conn.defer(
                "INSERT INTO events (recording_id, at, old, new, facts) VALUES (?, ?, NULL, ?, ?)",
                (recording_id, now, str(state), json.dumps({"duplicate_of": duplicate_of})),
            )
        return _row(inserted)

    def latest_for_path(self, watch: str, relpath: str) -> RecordingRow | None:
        rows = self._query(
            "SELECT * FROM recordings WHERE watch = ? AND relpath = ? ORDER BY id DESC LIMIT 1",
            (watch, relpath),
        )
        return _row(rows[0]) if rows else None

    def known_files(self, watch: str) -> dict[str, tuple[int, float]]:
        """relpath -> (size, mtime) of the latest version of each file, for fast rescans."""
        rows = self._conn.execute(
            "SELECT relpath, size_bytes, mtime FROM recordings WHERE watch = ? ORDER BY id",
            (watch,),
        )
        return {relpath: (size, mtime) for relpath, size, mtime in rows}

    def original_of(self, size_bytes: int, sha256: str) -> RecordingRow | None:
        """The first recording with this fingerprint that is neither a duplicate nor
        dismissed (a dismissed recording's content was never processed)."""
        rows = self._query(
            "SELECT * FROM recordings WHERE sha256 = ? AND size_bytes = ? AND state NOT IN (?, ?)"
            " ORDER BY id LIMIT 1",
            (sha256, size_bytes, str(State.DUPLICATE), str(State.DISMISSED)),
        )
        return _row(rows[0]) if rows else None

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
        another process meanwhile), raises `TransitionError` and writes nothing.

        Args:
            expected: the state the caller saw; None to skip that check.
            job_limit: ``queued -> submitting`` only within the account's job limit and in
                conversation order (`JobSlotTaken`), checked in this transaction.
            facts: recorded in the event history (and logged by the caller).
            mapping: (key, conversation_id, name) to persist in the same commit.
            unmap: (key, conversation_id) to forget in the same commit, if still so mapped.
            deliveries: sink names whose outbox entries start pending in the same commit.
            columns: recording columns to set; attempts and error reset unless given.
        """
        unknown = set(columns) - _WRITABLE
        if unknown:
            raise ValueError(f"not writable: {sorted(unknown)}")
        now = time.time()
        facts_json = redact(json.dumps(facts or {}, default=str))
        with self._tx():
            old = self._fenced_state(recording_id)
            if expected is not None and old is not expected:
                raise TransitionError(
                    f"recording {recording_id} is {old}, not {expected}: changed meanwhile"
                )
            check_transition(old, new)
            if job_limit is not None and new is State.SUBMITTING:
                self._check_turn(recording_id, job_limit)
            columns.setdefault("attempts", 0)
            columns.setdefault("next_attempt_at", 0)
            if new is not State.FAILED:
                columns.setdefault("error", None)
            assignments = ", ".join(f"{c} = ?" for c in columns)
            values = [_encode(c, v) for c, v in columns.items()]
            # Writes read only once committed: PostgreSQL sends them with the COMMIT.
            written = self._conn.defer(
                f"UPDATE recordings SET state = ?, updated_at = ?, {assignments} WHERE id = ?"
                " RETURNING *",
                [str(new), now, *values, recording_id],
            )
            self._conn.defer(
                "INSERT INTO events (recording_id, at, old, new, facts) VALUES (?, ?, ?, ?, ?)",
                (recording_id, now, str(old), str(new), facts_json),
            )
            if mapping:
                key, conversation_id, name = mapping
                self._conn.defer(
                    "INSERT OR IGNORE INTO conversations (key, conversation_id, name, created_at)"
                    " VALUES (?, ?, ?, ?)",
                    (key, conversation_id, name, now),
                )
            if unmap:
                self._conn.defer(
                    "DELETE FROM conversations WHERE key = ? AND conversation_id = ?", unmap
                )
            for sink in deliveries:
                self._conn.defer(
                    "INSERT INTO deliveries (recording_id, sink, state, updated_at)"
                    " VALUES (?, ?, 'pending', ?) ON CONFLICT (recording_id, sink) DO UPDATE"
                    " SET state = 'pending', attempts = 0, next_attempt_at = 0, error = NULL",
                    (recording_id, sink, now),
                )
        return _row(written.fetchone())  # the row as committed: no second read

    def update(self, recording_id: int, **columns: Any) -> RecordingRow:
        """Change columns without a state change (attempts, back-off, upload start)."""
        unknown = set(columns) - _WRITABLE
        if unknown:
            raise ValueError(f"not writable: {sorted(unknown)}")
        assignments = ", ".join(f"{c} = ?" for c in columns)
        with self._tx():
            self._fenced(recording_id)
            written = self._conn.defer(  # read once committed
                f"UPDATE recordings SET updated_at = ?, {assignments} WHERE id = ? RETURNING *",
                [time.time(), *(_encode(c, v) for c, v in columns.items()), recording_id],
            )
        row = written.fetchone()
        if row is None:
            raise KeyError(recording_id)
        return _row(row)

    def _unclaimed(self) -> tuple[str, list[Any]]:
        """SQL (and its arguments) that leaves out of `runnable` what another node drives:
        nothing on SQLite."""
        return "", []

    def _fenced(self, recording_id: int) -> None:
        """Inside a write transaction: refuse the write if this store's claim on the
        recording was taken over. One daemon per SQLite file: nothing to check."""

    def _fenced_state(self, recording_id: int) -> State:
        """Inside a write transaction: `_fenced`, then the recording's state (PostgreSQL
        reads both in one round trip)."""
        self._fenced(recording_id)
        row = self._conn.execute(
            "SELECT state FROM recordings WHERE id = ?", (recording_id,)
        ).fetchone()
        if row is None:
            raise KeyError(recording_id)
        return _STATES[row[0]]

    def _check_turn(self, recording_id: int, job_limit: int) -> None:
        """Inside the ``queued -> submitting`` transaction: within the job limit, in order."""
        in_flight = self.count_states(IN_FLIGHT)
        if in_flight >= job_limit:
            raise JobSlotTaken(f"{in_flight} jobs in flight, the limit is {job_limit}")
        if self.earlier_part_pending(self.get(recording_id)):
            raise JobSlotTaken("an earlier part of its conversation is still to be submitted")

    def claim(self, recording_id: int, node: str, lease_seconds: float) -> Claim | None:
        """One daemon per file (its lock): every claim is granted, nothing to fence."""
        return Claim(recording_id=recording_id, node=node, epoch=0)

    def release(self, recording_id: int) -> None:
        """Nothing was claimed in the database."""

    def unclaim(self, recording_id: int) -> None:
        """Nothing was claimed in the database."""

    def renew_claims(self, node: str, lease_seconds: float) -> list[int]:
        return []

    def runnable(
        self, now: float, limit: int = 500, states: Iterable[State] = PIPELINE
    ) -> list[tuple[int, State]]:
        """(id, state) of the recordings in `states` whose next stage may run now, oldest
        first.

        Only ids and states: the dispatcher asks on every state change, and most answers are
        recordings it is already driving or that wait for a job slot, so it loads (`get`)
        just the ones it starts; it leaves out the states it cannot start now.
        """
        wanted = [str(s) for s in states if s in PIPELINE]
        if not wanted:
            return []
        marks = ",".join("?" * len(wanted))
        unclaimed, unclaimed_args = self._unclaimed()
        return [
            (i, _STATES[state])
            for i, state in self._conn.execute(
                f"SELECT id, state FROM recordings WHERE state IN ({marks})"
                f" AND next_attempt_at <= ?{unclaimed} ORDER BY id LIMIT ?",
                [*wanted, now, *unclaimed_args, limit],
            )
        ]

    def outlook(self) -> Outlook:
        flying = ",".join("?" * len(IN_FLIGHT))
        pending = ",".join("?" * len(PIPELINE))
        in_flight, wakeup = self._conn.execute(
            f"SELECT (SELECT COUNT(*) FROM recordings WHERE state IN ({flying})),"
            f" (SELECT MIN(next_attempt_at) FROM recordings WHERE state IN ({pending}))",
            [*(str(s) for s in IN_FLIGHT), *(str(s) for s in PIPELINE)],
        ).fetchone()
        return Outlook(in_flight=int(in_flight), next_wakeup=wakeup)

    def needs_upload_file(self, recording_id: int) -> bool:
        """True while the recording may still upload (or re-upload) its work file."""
        row = self._conn.execute(
            "SELECT state, failed_from FROM recordings WHERE id = ?", (recording_id,)
        ).fetchone()
        if row is None:
            return False
        state, failed_from = State(row[0]), row[1]
        return state in PIPELINE or (state is State.FAILED and failed_from is not None)

    def count_states(self, states: Iterable[State]) -> int:
        states = [str(s) for s in states]
        marks = ",".join("?" * len(states))
        return self._conn.execute(
            f"SELECT COUNT(*) FROM recordings WHERE state IN ({marks})", states
        ).fetchone()[0]

    def lowered_job_limit(self, backend: str) -> tuple[int, float] | None:
        row = self._conn.execute(
            "SELECT lowered_to, lowered_at FROM job_limits WHERE backend = ?", (backend,)
        ).fetchone()
        return (int(row[0]), float(row[1])) if row is not None else None

    def lower_job_limit(self, backend: str, to: int, now: float) -> None:
        with self._tx():
            self._conn.execute(
                "INSERT INTO job_limits (backend, lowered_to, lowered_at) VALUES (?, ?, ?)"
                " ON CONFLICT (backend) DO UPDATE SET lowered_to = excluded.lowered_to,"
                " lowered_at = excluded.lowered_at",
                (backend, to, now),
            )

    def earlier_part_pending(self, row: RecordingRow) -> bool:
        """True while an earlier part of the same conversation has not been submitted yet."""
        if not row.conversation_key:
            return False
        waiting = (State.DISCOVERED, State.PROBED, State.TRANSCODED, State.QUEUED, State.SUBMITTING)
        marks = ",".join("?" * len(waiting))
        found = self._conn.execute(
            "SELECT 1 FROM recordings WHERE conversation_key = ? AND id != ?"
            f" AND state IN ({marks}) AND (sort_key < ? OR (sort_key = ? AND id < ?)) LIMIT 1",
            [
                row.conversation_key,
                row.id,
                *(str(s) for s in waiting),
                row.sort_key,
                row.sort_key,
                row.id,
            ],
        ).fetchone()
        return found is not None

    def parts_of(self, conversation_id: str) -> list[RecordingRow]:
        """The recordings of a conversation whose jobs completed, in append order.

        That includes the ones that failed after their job completed (while fetching or
        delivering): they are part of the conversation, and `ingestd retry` or
        `ingestd redeliver` finishes them without submitting them again.
        """
        completed = (State.FETCHING, State.DELIVERING, State.DONE)
        rows = self._query(
            "SELECT * FROM recordings WHERE conversation_id = ? AND (state IN (?, ?, ?)"
            " OR (state = ? AND failed_from IN (?, ?))) ORDER BY sort_key, id",
            (
                conversation_id,
                *(str(s) for s in completed),
                str(State.FAILED),
                str(State.FETCHING),
                str(State.DELIVERING),
            ),
        )
        return [_row(r) for r in rows]

    def known_conversation_ids(self) -> set[str]:
        rows = self._conn.execute(
            "SELECT conversation_id FROM recordings WHERE conversation_id IS NOT NULL"
            " UNION SELECT conversation_id FROM conversations"
        )
        return {r[0] for r in rows}

    # -- conversation mapping ------------------------------------------------------------

    def recent_keys(self, prefix: str, since_mtime: float) -> list[tuple[str, float]]:
        """`ingestd.registry.MappingHistory`: keys by prefix, newest file mtime first."""
        rows = self._conn.execute(
            "SELECT conversation_key, MAX(mtime) AS latest FROM recordings"
            " WHERE substr(conversation_key, 1, ?) = ? AND mtime >= ?"
            " GROUP BY conversation_key ORDER BY latest DESC",
            (len(prefix), prefix, since_mtime),
        )
        return [(key, latest) for key, latest in rows]

    def pin_conversation(self, key: str, conversation_id: str) -> None:
        """Map a key to an existing conversation (appends go there; nothing is POSTed)."""
        with self._tx():
            self._conn.execute(
                "INSERT OR IGNORE INTO conversations (key, conversation_id, name, created_at)"
                " VALUES (?, ?, NULL, ?)",
                (key, conversation_id, time.time()),
            )

    def conversation_for(self, key: str) -> str | None:
        row = self._conn.execute(
            "SELECT conversation_id FROM conversations WHERE key = ?", (key,)
        ).fetchone()
        return row[0] if row else None

    def set_mapping(self, key: str, conversation_id: str) -> None:
        """Point a key at a conversation (operator's `ingestd map set`)."""
        with self._tx():
            self._conn.execute(
                "INSERT INTO conversations (key, conversation_id, name, created_at)"
                " VALUES (?, ?, NULL, ?) ON CONFLICT (key) DO UPDATE"
                " SET conversation_id = excluded.conversation_id",
                (key, conversation_id, time.time()),
            )

    def delete_mapping(self, key: str) -> bool:
        with self._tx():
            cursor = self._conn.execute("DELETE FROM conversations WHERE key = ?", (key,))
        return cursor.rowcount > 0

    def mappings(self) -> list[dict[str, Any]]:
        rows = self._query("SELECT * FROM conversations ORDER BY created_at")
        return [dict(r) for r in rows]

    # -- deliveries ----------------------------------------------------------------------

    def deliveries(self, recording_id: int) -> list[dict[str, Any]]:
        rows = self._query(
            "SELECT * FROM deliveries WHERE recording_id = ? ORDER BY sink", (recording_id,)
        )
        return [dict(r) for r in rows]

    def previous_receipts(self, conversation_id: str) -> dict[str, dict[str, Any]]:
        """sink -> receipt detail of its latest successful delivery of this conversation.

        Only a success writes `detail`, and requeueing a delivery (`transition` with
        ``deliveries``: a retry or a redelivery) keeps it, so the receipt is found whatever
        state the delivery is in now: a redelivered Slack message is updated, not posted again.
        """
        rows = self._conn.execute(
            "SELECT d.sink, d.detail FROM deliveries d JOIN recordings r"
            " ON r.id = d.recording_id WHERE r.conversation_id = ?"
            " AND d.detail IS NOT NULL ORDER BY d.updated_at, d.recording_id",
            (conversation_id,),
        )
        return {sink: json.loads(detail) for sink, detail in rows}

    def delivery_counts(self) -> dict[str, dict[str, int]]:
        """sink -> {pending, done, failed: count}, for status and metrics."""
        counts: dict[str, dict[str, int]] = {}
        for sink, state, count in self._conn.execute(
            "SELECT sink, state, COUNT(*) FROM deliveries GROUP BY sink, state"
        ):
            counts.setdefault(sink, {"pending": 0, "done": 0, "failed": 0})[state] = count
        return counts

    def mark_delivery(self, recording_id: int, sink: str, **columns: Any) -> None:
        assignments = ", ".join(f"{c} = ?" for c in columns)
        with self._tx():
            self._fenced(recording_id)
            self._conn.execute(
                f"UPDATE deliveries SET updated_at = ?, {assignments}"
                " WHERE recording_id = ? AND sink = ?",
                [time.time(), *(_encode(c, v) for c, v in columns.items()), recording_id, sink],
            )

    # -- reporting -----------------------------------------------------------------------

    def counts_by_state(self) -> dict[str, int]:
        rows = self._conn.execute("SELECT state, COUNT(*) FROM recordings GROUP BY state")
        return {state: count for state, count in rows}

    def latest(self, states: Iterable[State], limit: int = 10) -> list[RecordingRow]:
        states = [str(s) for s in states]
        marks = ",".join("?" * len(states))
        rows = self._query(
            f"SELECT * FROM recordings WHERE state IN ({marks}) ORDER BY updated_at DESC LIMIT ?",
            [*states, limit],
        )
        return [_row(r) for r in rows]

    def all(self) -> list[RecordingRow]:
        return [_row(r) for r in self._query("SELECT * FROM recordings ORDER BY id")]

    def failed_jobs(self, recording_id: int) -> int:
        """Jobs of this recording the API failed since an operator last retried it: the
        submitted -> queued changes after its last way out of ``failed``."""
        row = self._conn.execute(
            "SELECT COUNT(*) FROM events WHERE recording_id = ? AND old = ? AND new = ?"
            " AND id > (SELECT COALESCE(MAX(id), 0) FROM events"
            " WHERE recording_id = ? AND old = ?)",
            (
                recording_id,
                str(State.SUBMITTED),
                str(State.QUEUED),
                recording_id,
                str(State.FAILED),
            ),
        ).fetchone()
        return int(row[0])

    def events(self, recording_id: int) -> list[dict[str, Any]]:
        rows = self._query(
            "SELECT at, old, new, facts FROM events WHERE recording_id = ? ORDER BY id",
            (recording_id,),
        )
        return [{**dict(r), "facts": json.loads(r["facts"] or "{}")} for r in rows]

    # -- reads for the dashboard (ingestd.dashboard) --------------------------------------

    @classmethod
    def read_only(cls, path: Path) -> SqliteStore:
        """A read-only store on its own connection, for a thread other than the event loop's.

        No migration, no pragma that writes: a WAL reader never blocks the daemon's writer,
        and ``query_only`` makes any write through it fail instead of taking the lock. With
        no daemon running (no ``-wal`` file) the file is read as immutable, which creates no
        journal files beside it.
        """
        store = cls.__new__(cls)
        store.path = path
        store.where = str(path)
        running = path.with_name(path.name + "-wal").exists()
        uri = Path(path).absolute().as_uri() + ("?mode=ro" if running else "?immutable=1")
        try:
            if not path.exists():
                raise sqlite3.OperationalError("unable to open database file")
            raw = sqlite3.connect(uri, uri=True, timeout=5, isolation_level=None)
        except sqlite3.Error as exc:
            raise store_error(path, exc) from None
        raw.row_factory = sqlite3.Row
        store._conn = _Connection(raw, path)
        try:
            store._conn.execute("PRAGMA query_only=ON")
        except StoreError:
            raw.close()
            raise
        return store

    def reader(self) -> SqliteStore:
        return self.read_only(self.path)

    def snapshot(self) -> StoreSnapshot:
        with self._read():
            states = dict(
                self._conn.execute("SELECT state, COUNT(*) FROM recordings GROUP BY state")
            )
            deliveries = {
                (sink, state): count
                for sink, state, count in self._conn.execute(
                    "SELECT sink, state, COUNT(*) FROM deliveries GROUP BY sink, state"
                )
            }
            marks = ",".join("?" * len(PIPELINE))
            (oldest,) = self._conn.execute(
                f"SELECT MIN(created_at) FROM recordings WHERE state IN ({marks})",
                [str(s) for s in PIPELINE],
            ).fetchone()
            nodes, claims = tuple(self.nodes()), self.claims()
        return StoreSnapshot(states, deliveries, oldest, nodes, claims)

    @contextlib.contextmanager
    def _read(self) -> Iterator[None]:
        """One consistent read across several queries."""
        self._conn.execute("BEGIN")
        try:
            yield
        finally:
            self._conn.rollback()

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
        bound created_at (UNIX seconds, until exclusive).
        """
        where, args = ["1 = 1"], []
        if states:
            where.append(f"state IN ({','.join('?' * len(states))})")
            args += list(states)
        if watch:
            where.append("watch = ?")
            args.append(watch)
        if since is not None:
            where.append("created_at >= ?")
            args.append(since)
        if until is not None:
            where.append("created_at < ?")
            args.append(until)
        if text:
            pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            where.append(
                "(relpath LIKE ? ESCAPE '\\' OR name LIKE ? ESCAPE '\\'"
                " OR error LIKE ? ESCAPE '\\')"
            )
            args += [pattern] * 3
        condition = " AND ".join(where)
        (total,) = self._conn.execute(
            f"SELECT COUNT(*) FROM recordings WHERE {condition}", args
        ).fetchone()
        rows = self._query(
            f"SELECT * FROM recordings WHERE {condition} ORDER BY id DESC LIMIT ? OFFSET ?",
            [*args, limit, offset],
        )
        return [_row(r) for r in rows], int(total)

    def watch_names(self) -> list[str]:
        return [r[0] for r in self._conn.execute("SELECT DISTINCT watch FROM recordings")]

    def in_conversation(self, conversation_id: str) -> list[RecordingRow]:
        """Every recording sent to a conversation, in append order (unlike `parts_of`, also
        those still on their way or failed)."""
        rows = self._query(
            "SELECT * FROM recordings WHERE conversation_id = ? OR (conversation_key IS NOT NULL"
            " AND conversation_key IN (SELECT key FROM conversations WHERE conversation_id = ?))"
            " ORDER BY sort_key, id",
            (conversation_id, conversation_id),
        )
        return [_row(r) for r in rows]

    def entered_state_at(self, recording_ids: Sequence[int]) -> dict[int, float]:
        """recording id -> when it entered its current state (its latest event)."""
        if not recording_ids:
            return {}
        marks = ",".join("?" * len(recording_ids))
        rows = self._conn.execute(
            f"SELECT recording_id, MAX(at) FROM events WHERE recording_id IN ({marks})"
            " GROUP BY recording_id",
            list(recording_ids),
        )
        return {int(i): float(at) for i, at in rows}

    def failed_deliveries(self, limit: int = 20) -> list[dict[str, Any]]:
        """Deliveries that gave up, newest first, with their recording's conversation."""
        rows = self._query(
            "SELECT d.recording_id, d.sink, d.error, d.updated_at, r.conversation_id, r.relpath"
            " FROM deliveries d JOIN recordings r ON r.id = d.recording_id"
            " WHERE d.state = 'failed' ORDER BY d.updated_at DESC LIMIT ?",
            (limit,),
        )
        return [dict(r) for r in rows]

    # -- nodes: one daemon per SQLite file (daemon.StateLock); nothing to record ------------

    def join_node(self, node: NodeInfo, stale_after: float) -> None:
        return None

    def node_heartbeat(self, node: NodeInfo) -> bool:
        return True

    def leave_node(self, node: NodeInfo) -> None:
        return None

    def nodes(self) -> list[dict[str, Any]]:
        return []

    def set_draining(self, name: str, draining: bool) -> bool:
        return False

    def claims(self) -> dict[int, dict[str, Any]]:
        return {}


def store_error(path: Path, exc: sqlite3.Error) -> StoreError:
    """The StoreError for `exc`: names the database, the cause and what the operator can do.

    Full disk, lock and I/O errors are `transient` (the same write may succeed later);
    corruption and everything else are not.
    """
    code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
    if code == 13:  # SQLITE_FULL
        return StoreError(
            f"the state database {path} cannot be written: its disk is full ({exc}); "
            f"free space there",
            transient=True,
        )
    if code in (5, 6):  # SQLITE_BUSY, SQLITE_LOCKED
        return StoreError(
            f"the state database {path} is locked by another process for more than "
            f"{BUSY_TIMEOUT_SECONDS:.0f} s ({exc}); stop whatever holds it (an sqlite3 shell, "
            f"a backup tool)",
            transient=True,
        )
    if code in (11, 26):  # SQLITE_CORRUPT, SQLITE_NOTADB
        return _corrupt(path, str(exc))
    if code in (10, 8, 14):  # SQLITE_IOERR, SQLITE_READONLY, SQLITE_CANTOPEN
        return StoreError(
            f"cannot read or write the state database {path} ({exc}); check its disk, "
            f"the file's permissions and free space",
            transient=True,
        )
    return StoreError(f"state database {path}: {exc}")


def _corrupt(path: Path, detail: str) -> StoreError:
    return StoreError(
        f"the state database {path} is corrupt ({detail}); it is left as it is: restore it "
        f"from a backup, or move it aside to start with an empty one"
    )


class _Result:
    """A statement's rows, fetched at once (so a failing read fails inside `execute`)."""

    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def fetchone(self) -> Any:
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list[Any]:
        return self._rows

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)


class _Connection:
    """The sqlite3 connection, with every sqlite3 error turned into a `StoreError`."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path

    def execute(self, sql: str, args: Sequence[Any] = ()) -> _Result:
        try:
            cursor = self._conn.execute(sql, args)
            return _Result(cursor.fetchall(), cursor.rowcount)
        except sqlite3.Error as exc:
            raise store_error(self.path, exc) from None

    def defer(self, sql: str, args: Sequence[Any] = ()) -> _Result:
        """A write whose result is not needed before the transaction ends (PostgreSQL sends
        it with the next statement or the COMMIT); SQLite runs it now."""
        return self.execute(sql, args)

    def executescript(self, script: str) -> None:
        try:
            self._conn.executescript(script)
        except sqlite3.Error as exc:
            self.rollback()
            raise store_error(self.path, exc) from None

    def rollback(self) -> None:
        """Undo an open transaction, if any; SQLite has already undone it after some errors."""
        if self._conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")

    def close(self) -> None:
        self._conn.close()


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, so a writer never fails halfway on a busy database.

    Any error (in the body or at COMMIT, e.g. a full disk) rolls back and propagates.
    """

    def __init__(self, conn: _Connection) -> None:
        self._conn = conn

    def __enter__(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is not None:
            self._conn.rollback()
            return
        try:
            self._conn.execute("COMMIT")
        except StoreError:
            self._conn.rollback()
            raise
