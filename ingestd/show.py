"""``ingestd show ID | PATH``: one recording's whole story, from the state store.

What an operator asks when a file did something unexpected: which file (and which version of
it), its fingerprint, every state change with its time and facts, the decisions stored with
it (endpoint, parameters, conversation), errors, each sink's delivery and the result paths.
Read-only: it never changes the store, so it is safe beside a running daemon.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ingestd.config import Config
from ingestd.errors import IngestdError
from ingestd.logging import redact, redact_secrets
from ingestd.store import RecordingRow, Store


def add_parser(sub: Any, with_config: Any) -> None:
    p = sub.add_parser("show", help="one recording's whole story: states, decisions, deliveries")
    with_config(p)
    p.add_argument("recording", help="a recording id (#12 or 12) or the file's path")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_show)


def cmd_show(args: argparse.Namespace) -> int:
    from ingestd.commands import _load, _open_store

    config = _load(args)
    store = _open_store(config)
    row, versions = find_recording(config, store, args.recording)
    story = recording_story(store, row, versions)
    if args.json:
        print(json.dumps(story, indent=2, default=str))
    else:
        print(render(story))
    return 0


def find_recording(config: Config, store: Store, wanted: str) -> tuple[RecordingRow, list[int]]:
    """The recording `wanted` names, and the ids of every version of its file (oldest first).

    `wanted` is an id (``12`` or ``#12``), a path to the file (absolute, or relative to the
    current folder), a path below a watch (``team/weekly.wav``) or ``WATCH/path`` as
    `ingestd status` prints it. A path names its latest version.
    """
    text = wanted.strip()
    if text.lstrip("#").isdigit():
        try:
            row = store.get(int(text.lstrip("#")))
        except KeyError:
            raise IngestdError(f"no recording #{text.lstrip('#')} in {store.where}") from None
        return row, store.versions_of(row.watch, row.relpath)
    candidates: list[tuple[str, str]] = []
    path = Path(text).expanduser()
    absolute = path.resolve() if path.is_absolute() or path.exists() else None
    for watch in config.watches:
        if absolute is not None and absolute.is_relative_to(watch.path):
            candidates.append((watch.name, absolute.relative_to(watch.path).as_posix()))
        candidates.append((watch.name, text))
        if text.startswith(f"{watch.name}/"):
            candidates.append((watch.name, text.removeprefix(f"{watch.name}/")))
    if absolute is not None:  # processed by `ingestd process` outside every watch
        candidates.append((f"process:{absolute.parent}", absolute.name))
    for watch_name, rel in candidates:
        latest = store.latest_for_path(watch_name, rel)
        if latest is not None:
            return latest, store.versions_of(watch_name, rel)
    raise IngestdError(
        f"no recording of {text!r} in {store.where}; give its id (`ingestd status` lists "
        f"them) or its path in a watched folder"
    )


def _when(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def recording_story(store: Store, row: RecordingRow, versions: list[int]) -> dict[str, Any]:
    """Everything the store knows of `row`, as plain data (secrets masked)."""
    deliveries = []
    for d in store.deliveries(row.id):
        detail = json.loads(d["detail"]) if d.get("detail") else None
        deliveries.append(
            {
                "sink": d["sink"],
                "state": d["state"],
                "attempts": d["attempts"],
                "error": d["error"],
                "updated_at": _when(d["updated_at"]),
                "receipt": detail,
            }
        )
    story: dict[str, Any] = {
        "id": row.id,
        "file": {
            "watch": row.watch,
            "path": row.relpath,
            "absolute_path": str(row.path),
            "exists": row.path.exists(),
        },
        "fingerprint": {
            "size_bytes": row.size_bytes,
            "sha256": row.sha256,
            "mtime": _when(row.mtime),
        },
        "versions": versions,
        "state": str(row.state),
        "failed_from": row.failed_from,
        "error": row.error,
        "attempts": row.attempts,
        "next_attempt_at": _when(row.next_attempt_at) if row.next_attempt_at else None,
        "duplicate_of": row.duplicate_of,
        "decisions": {
            "media": row.media,
            "upload_path": row.upload_path,
            "upload_media": row.upload_media,
            "upload_size_bytes": row.upload_size_bytes,
            "endpoint": row.endpoint,
            "parameters": row.params,
            "conversation_key": row.conversation_key,
            "name": row.name,
        },
        "api": {
            "conversation_id": row.conversation_id,
            "job_id": row.job_id,
            "upload_started_at": _when(row.upload_started_at),
        },
        "history": [
            {"at": _when(e["at"]), "from": e["old"], "to": e["new"], "facts": e["facts"]}
            for e in store.events(row.id)
        ],
        "deliveries": deliveries,
        "results": {
            "insights": row.insights_path,
            "sinks": {d["sink"]: d["receipt"] for d in deliveries if d["receipt"]},
        },
        "created_at": _when(row.created_at),
        "updated_at": _when(row.updated_at),
    }
    for extra in _EXTRAS:
        story.update(extra(store, row))
    return dict(redact_secrets(None, "", story))


def _api_deletions(store: Store, row: RecordingRow) -> dict[str, Any]:
    """Deletions at the API of its conversation, and of conversations it abandoned."""
    from ingestd.deletions import abandoned_conversations

    ids = [row.conversation_id, *abandoned_conversations(store.events(row.id))]
    return {
        "api_deletions": [
            {
                "conversation_id": d["conversation_id"],
                "reason": d["reason"],
                "state": d["state"],
                "attempts": d["attempts"],
                "error": d["error"],
                "updated_at": _when(d["updated_at"]),
            }
            for d in store.deletions_of(c for c in ids if c)
        ]
    }


def _render_api_deletions(story: dict[str, Any]) -> list[str]:
    lines = []
    for d in story.get("api_deletions", []):
        error = f"  {d['error']}" if d["error"] else ""
        lines.append(
            f"  api delete   {d['conversation_id']} ({d['reason']}): {d['state']} "
            f"at {d['updated_at']}, attempts {d['attempts']}{error}"
        )
    return lines


def _after(store: Store, row: RecordingRow) -> dict[str, Any]:
    from ingestd.disposal import story

    section = story(store, row)
    if "after" in section:
        section["after"]["updated_at"] = _when(section["after"]["updated_at"])
    return section


def _render_after(story: dict[str, Any]) -> list[str]:
    from ingestd.disposal import render

    return render(story)


_EXTRAS: list[Any] = [_after, _api_deletions]
"""Functions ``(store, row) -> {section: data}`` adding what other features record (the
after-success action, deletions at the API)."""


def _facts(facts: dict[str, Any]) -> str:
    return ", ".join(f"{k}={json.dumps(v, default=str)}" for k, v in facts.items() if v is not None)


def render(story: dict[str, Any]) -> str:
    """The story as terminal text, most telling facts first."""
    f, fp, api = story["file"], story["fingerprint"], story["api"]
    lines = [
        f"#{story['id']} {f['watch']}/{f['path']}",
        f"  state        {story['state']}"
        + (f" (failed while {story['failed_from']})" if story["state"] == "failed" else ""),
        f"  file         {f['absolute_path']}" + ("" if f["exists"] else " (no longer there)"),
        f"  fingerprint  {fp['size_bytes']} bytes, sha256 {fp['sha256']}, mtime {fp['mtime']}",
    ]
    if len(story["versions"]) > 1:
        others = ", ".join(f"#{v}" for v in story["versions"] if v != story["id"])
        lines.append(f"  versions     other recordings of this path: {others}")
    if story["duplicate_of"]:
        lines.append(f"  duplicate of #{story['duplicate_of']}")
    if story["error"]:
        lines.append(f"  error        {story['error']}")
    d = story["decisions"]
    if d["media"]:
        m = d["media"]
        lines.append(
            f"  media        {m.get('container')}, {m.get('audio_codec')}, "
            f"{m.get('channels')} ch, {m.get('sample_rate_hz')} Hz, "
            f"{m.get('duration_seconds')} s"
        )
    if d["upload_path"]:
        lines.append(f"  upload       {d['upload_path']} ({d['upload_size_bytes']} bytes)")
    if d["endpoint"]:
        lines.append(f"  endpoint     {d['endpoint'].get('kind')}")
    if d["parameters"]:
        lines.append(f"  parameters   {json.dumps(d['parameters'], sort_keys=True)}")
    if d["conversation_key"]:
        lines.append(f"  key          {d['conversation_key']}")
    if api["conversation_id"]:
        lines.append(f"  conversation {api['conversation_id']} (job {api['job_id']})")
    lines.append("  history")
    for e in story["history"]:
        change = f"{e['from']} -> {e['to']}" if e["from"] else e["to"]
        facts = _facts(e["facts"])
        lines.append(f"    {e['at']}  {change}" + (f"  {facts}" if facts else ""))
    if story["deliveries"]:
        lines.append("  deliveries")
        for dl in story["deliveries"]:
            line = f"    {dl['sink']:<12} {dl['state']:<8} attempts {dl['attempts']}"
            if dl["error"]:
                line += f"  {dl['error']}"
            lines.append(line)
            if dl["receipt"]:
                lines.append(f"      {_facts(dl['receipt'])}")
    if story["results"]["insights"]:
        lines.append(f"  insights     {story['results']['insights']}")
    for render_extra in _RENDER_EXTRAS:
        lines.extend(render_extra(story))
    return redact("\n".join(lines))


_RENDER_EXTRAS: list[Any] = [_render_after, _render_api_deletions]
"""Functions ``(story) -> [lines]`` for the sections `_EXTRAS` add."""
