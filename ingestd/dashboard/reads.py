"""What the pages and the JSON API show, read from the durable store.

Every read opens its own read-only store (`Store.reader`) in the server's thread: the
daemon's `Store` belongs to the event loop, and a WAL reader never blocks its writer. What
only the running process knows (watcher health, which recordings a stage is running for,
upload progress, the job limit) comes from `Live`, a snapshot the daemon hands over.

Everything that came from outside (errors, parameters, event facts) is redacted here, once,
before any page or JSON answer sees it.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ingestd import jsontext
from ingestd.lifecycle import IN_FLIGHT, PIPELINE, RESUMABLE_TERMINALS, State
from ingestd.logging import redact, redact_secrets
from ingestd.nodes import LEASE_SECONDS, holders, node_rows
from ingestd.store import RecordingRow, Store

PAGE_SIZE = 50

STATE_WORDS = {
    State.DISCOVERED: "waiting to be probed",
    State.PROBED: "waiting to be transcoded",
    State.TRANSCODED: "choosing endpoint and parameters",
    State.QUEUED: "queued for the API",
    State.SUBMITTING: "uploading",
    State.SUBMITTED: "transcribing at the API",
    State.FETCHING: "fetching insights",
    State.DELIVERING: "delivering to sinks",
    State.DONE: "done",
    State.FAILED: "failed",
    State.REJECTED: "rejected (bad input)",
    State.DUPLICATE: "duplicate of an earlier file",
    State.DISMISSED: "dismissed (replaced, deleted, or dropped by an operator)",
}

WHAT_TO_DO = {
    State.FAILED: "Fix the cause named above, then Retry: it resumes where it failed "
    "(a recording whose job completed is never uploaded again).",
    State.REJECTED: "The file itself was refused. Replace it in the watched folder with a "
    "good copy, or Retry if the cause was outside the file.",
    State.DUPLICATE: "Nothing to do: the same content was sent before.",
    State.DISMISSED: "Nothing to do: the reason is named above (a replaced file's new "
    "content is a recording of its own).",
}


@dataclass(frozen=True)
class WatchHealth:
    name: str
    path: str
    mode: str  # native | polling
    alive: bool
    folder_exists: bool

    @property
    def health(self) -> str:
        if not self.alive:
            return "stopped"
        if not self.folder_exists:
            return "folder missing"
        return "polling" if self.mode == "polling" else "watching"


@dataclass(frozen=True)
class Live:
    """What only the running daemon knows, copied at the moment of a request."""

    started_at: float
    version: str
    job_limit: int
    watches: tuple[WatchHealth, ...] = ()
    sinks: tuple[str, ...] = ()
    running: frozenset[int] = frozenset()  # recordings a stage is running for now
    settling: int = 0
    uploads: Mapping[str, tuple[int, int]] = field(default_factory=dict)  # path -> sent, size
    transcodes: Mapping[str, float] = field(default_factory=dict)  # source -> media seconds done
    api_429_last_hour: int = 0
    retries_last_hour: int = 0
    actions_enabled: bool = False
    node: str = ""  # this daemon's node.name (the nodes panel marks it)
    lease_seconds: float = LEASE_SECONDS  # node.lease_seconds: a node silent longer is stale


def scrub(value: Any) -> Any:
    """`value` with credential-looking keys masked and every known secret redacted."""
    return redact_secrets(None, "", {"v": value})["v"]


def when(ts: float | None) -> str:
    if not ts:
        return ""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def size(n: int | None) -> str:
    if n is None:
        return ""
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


class Reads:
    """The read side of the dashboard: one short read-only connection per call."""

    def __init__(self, open_reader: Callable[[], Store], live: Callable[[], Live]) -> None:
        self.open_reader = open_reader
        self.live = live

    @contextlib.contextmanager
    def _store(self) -> Iterator[Store]:
        store = self.open_reader()
        try:
            yield store
        finally:
            store.close()

    # -- overview / status -----------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """The overview, also ``GET /api/status``."""
        live = self.live()
        with self._store() as store:
            counts = store.counts_by_state()
            deliveries = store.delivery_counts()
            failed_deliveries = store.failed_deliveries(limit=10)
            nodes, claims = store.nodes(), store.claims()
        states = {str(s): counts.get(str(s), 0) for s in State}
        in_flight = sum(states[str(s)] for s in IN_FLIGHT)
        sinks = []
        for name in dict.fromkeys([*live.sinks, *deliveries]):
            by_state = deliveries.get(name, {"pending": 0, "done": 0, "failed": 0})
            sinks.append({"name": name, "configured": name in live.sinks, **by_state})
        now = time.time()
        return {
            "states": states,
            "nodes": [
                {**n, "this": n["name"] == live.node, "heard": duration(n["heartbeat_age_seconds"])}
                for n in node_rows(nodes, claims, now, live.lease_seconds)
            ],
            "claims": [{"recording_id": rid, **c} for rid, c in holders(claims).items()],
            "in_progress": sum(states[str(s)] for s in PIPELINE),
            "slots": {"in_use": in_flight, "limit": live.job_limit},
            "last_hour": {"api_429": live.api_429_last_hour, "retries": live.retries_last_hour},
            "settling": live.settling,
            "watches": [
                {"name": w.name, "path": w.path, "health": w.health, "mode": w.mode}
                for w in live.watches
            ],
            "sinks": sinks,
            "failed_deliveries": [
                {**d, "error": redact(d["error"] or "")} for d in failed_deliveries
            ],
            "version": live.version,
            "started_at": live.started_at,
            "uptime_seconds": round(now - live.started_at, 1),
            "actions_enabled": live.actions_enabled,
        }

    # -- queue -----------------------------------------------------------------------------

    def queue(self) -> list[dict[str, Any]]:
        """Recordings in the pipeline, oldest first, with what each waits for."""
        live = self.live()
        now = time.time()
        with self._store() as store:
            rows = list(reversed(store.latest(PIPELINE, limit=500)))
            rows.sort(key=lambda r: r.id)
            since = store.entered_state_at([r.id for r in rows])
            in_flight = store.count_states(IN_FLIGHT)
            held = {r.id for r in rows if r.state is State.QUEUED and store.earlier_part_pending(r)}
            claims = holders(store.claims())
        out = []
        for row in rows:
            item = summary(row)
            item["elapsed_seconds"] = round(now - row.created_at, 1)
            item["in_state_seconds"] = round(now - since.get(row.id, row.updated_at), 1)
            item["running"] = row.id in live.running
            claim = claims.get(row.id)
            item["claim"] = claim  # the node driving it (several nodes)
            running = row.id in live.running or bool(claim and claim["state"] == "held")
            item["waits_for"] = _waits_for(row, live, in_flight, row.id in held, running, now)
            upload = live.uploads.get(str(row.upload_path or row.path))
            item["upload"] = None
            if row.state is State.SUBMITTING and upload:
                sent, total = upload
                item["upload"] = {"sent_bytes": sent, "size_bytes": total}
            done = live.transcodes.get(str(row.path))
            item["transcode"] = None
            if row.state is State.PROBED and done is not None:
                length = (row.media or {}).get("duration_seconds")
                item["transcode"] = {"done_seconds": round(done, 1), "duration_seconds": length}
            out.append(item)
        return out

    # -- history ---------------------------------------------------------------------------

    def recordings(
        self,
        *,
        states: Sequence[str] = (),
        watch: str | None = None,
        since: float | None = None,
        until: float | None = None,
        text: str | None = None,
        page: int = 1,
        page_size: int = PAGE_SIZE,
    ) -> dict[str, Any]:
        with self._store() as store:
            rows, total = store.search(
                states=states,
                watch=watch,
                since=since,
                until=until,
                text=text,
                limit=page_size,
                offset=(page - 1) * page_size,
            )
            watches = sorted(store.watch_names())
        return {
            "recordings": [summary(r) for r in rows],
            "total": total,
            "page": page,
            "pages": max(1, -(-total // page_size)),
            "watches": watches,
        }

    # -- one recording ---------------------------------------------------------------------

    def recording(self, recording_id: int) -> dict[str, Any] | None:
        """Everything about one recording; None when there is no such id."""
        live = self.live()
        with self._store() as store:
            try:
                row = store.get(recording_id)
            except KeyError:
                return None
            events = store.events(recording_id)
            deliveries = store.deliveries(recording_id)
        detail = summary(row)
        detail.update(
            {
                "watch_root": row.watch_root,
                "size_bytes": row.size_bytes,
                "size": size(row.size_bytes),
                "sha256": row.sha256,
                "duplicate_of": row.duplicate_of,
                "failed_from": row.failed_from,
                "next_attempt_at": row.next_attempt_at or None,
                "what_to_do": _what_to_do(row, deliveries),
                "timeline": [
                    {
                        "at": e["at"],
                        "when": when(e["at"]),
                        "old": e["old"],
                        "new": e["new"],
                        "facts": scrub(e["facts"]),
                    }
                    for e in events
                ],
                "decisions": scrub(
                    {
                        "media": row.media,
                        "transcode": _transcode_decision(events),
                        "upload": {
                            "media": row.upload_media,
                            "size_bytes": row.upload_size_bytes,
                            "transcoded": bool(row.upload_path),
                        },
                        "endpoint": row.endpoint,
                        "parameters": row.params,
                        "conversation_key": row.conversation_key,
                        "conversation_name": row.name,
                    }
                ),
                "deliveries": [_delivery(d) for d in deliveries],
                "can_retry": row.state in RESUMABLE_TERMINALS,
                "can_redeliver": bool(row.conversation_id)
                and row.insights_path is not None
                and row.state in (State.DONE, State.FAILED),
                "sinks": list(live.sinks),
                "insights": _insights(row.insights_path),
            }
        )
        return detail

    def result_file(self, recording_id: int, index: int) -> Path | None:
        """The `index`-th file a sink reported writing for this recording (never a path
        taken from the request)."""
        with self._store() as store:
            deliveries = store.deliveries(recording_id)
        files = [p for d in deliveries for p in _paths(d)]
        if not 0 <= index < len(files):
            return None
        return Path(files[index])

    # -- a conversation --------------------------------------------------------------------

    def conversation(self, conversation_id: str) -> dict[str, Any] | None:
        with self._store() as store:
            rows = store.in_conversation(conversation_id)
            mappings = [m for m in store.mappings() if m["conversation_id"] == conversation_id]
        if not rows and not mappings:
            return None
        return {
            "conversation_id": conversation_id,
            "mapping_keys": [m["key"] for m in mappings],
            "name": next((r.name for r in rows if r.name), None),
            "parts": [summary(r) for r in rows],
        }


def summary(row: RecordingRow) -> dict[str, Any]:
    """A recording as a line of a list (history, queue, conversation parts, JSON)."""
    return {
        "id": row.id,
        "watch": row.watch,
        "path": row.relpath,
        "name": row.name or Path(row.relpath).name,
        "state": str(row.state),
        "state_words": STATE_WORDS[row.state],
        "error": redact(row.error) if row.error else None,
        "attempts": row.attempts,
        "conversation_id": row.conversation_id,
        "conversation_key": row.conversation_key,
        "job_id": row.job_id,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "created": when(row.created_at),
        "updated": when(row.updated_at),
    }


def _waits_for(
    row: RecordingRow, live: Live, in_flight: int, held: bool, running: bool, now: float
) -> str:
    """What the recording waits for; `running`: a stage runs for it now, on this node or
    (several nodes) on the node that holds its claim."""
    if row.next_attempt_at > now:
        why = f" after: {redact(row.error)}" if row.error else ""
        return f"a retry in {duration(row.next_attempt_at - now)}{why}"
    if row.state is State.QUEUED:
        if held:
            return "an earlier part of its conversation to be submitted"
        if in_flight >= live.job_limit:
            return f"a job slot ({in_flight} of {live.job_limit} in use)"
        return "its turn to upload"
    if not running and row.state in (
        State.DISCOVERED,
        State.PROBED,
        State.TRANSCODED,
    ):
        return "a free probe/transcode worker"
    return {
        State.DISCOVERED: "ffprobe",
        State.PROBED: "the transcode (ffmpeg)",
        State.TRANSCODED: "endpoint, parameters and conversation decisions",
        State.SUBMITTING: "the upload to finish",
        State.SUBMITTED: f"the Symbl job {row.job_id or ''} to complete".replace("  ", " "),
        State.FETCHING: "the insights download",
        State.DELIVERING: "its sinks",
    }.get(row.state, "")


def _what_to_do(row: RecordingRow, deliveries: list[dict[str, Any]]) -> str | None:
    failed_sinks = [d["sink"] for d in deliveries if d["state"] == "failed"]
    if row.state is State.FAILED and failed_sinks and row.insights_path:
        return (
            f"Delivery to {', '.join(failed_sinks)} gave up. Fix the sink, then Retry (only "
            f"failed sinks are delivered again) or Redeliver to one sink."
        )
    if row.state in WHAT_TO_DO:
        return WHAT_TO_DO[row.state]
    if row.error and row.state in PIPELINE:
        return "Nothing yet: the daemon retries by itself with a back-off."
    return None


def _transcode_decision(events: list[dict[str, Any]]) -> Any:
    for event in reversed(events):
        if event["new"] == str(State.TRANSCODED):
            return event["facts"].get("transcode")
    return None


def _paths(delivery: Mapping[str, Any]) -> list[str]:
    try:
        detail = json.loads(delivery.get("detail") or "{}")
    except ValueError:
        return []
    paths = detail.get("paths") if isinstance(detail, dict) else None
    return [str(p) for p in paths] if isinstance(paths, list) else []


def _delivery(delivery: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "sink": delivery["sink"],
        "state": delivery["state"],
        "attempts": delivery["attempts"],
        "error": redact(delivery["error"]) if delivery.get("error") else None,
        "updated": when(delivery["updated_at"]),
        "next_attempt_at": delivery["next_attempt_at"] or None,
        "files": [Path(p).name for p in _paths(delivery)],
    }


def _insights(path: str | None) -> dict[str, Any] | None:
    """Transcript lines and the lists of insights, shaped for the page; None if not saved."""
    if not path:
        return None
    try:
        data = jsontext.read(path)
    except (OSError, ValueError):
        return None
    from ingestd.timeline import clock, person, plain, transcript

    def items(kind: str, who: str) -> list[dict[str, str]]:
        out = []
        for item in data.get(kind) or []:
            if isinstance(item, Mapping) and (text := plain(item.get("text"))):
                out.append({"text": text, "who": person(item.get(who)) or ""})
        return out

    lines = transcript(data.get("messages") or [])
    return scrub(
        {
            "transcript": [
                {
                    "speaker": line.speaker or "Unknown speaker",
                    "at": clock(line.start) if line.start is not None else "",
                    "text": line.text,
                }
                for line in lines
            ],
            "topics": [plain(t.get("text")) for t in data.get("topics") or [] if t.get("text")],
            "questions": items("questions", "from"),
            "action_items": items("action_items", "assignee"),
            "follow_ups": items("follow_ups", "assignee"),
        }
    )
