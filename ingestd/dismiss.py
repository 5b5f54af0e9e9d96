"""`ingestd dismiss`, and what `ingestd retry` checks first: is there anything left to retry?

A rejected or failed recording stays in `ingestd status`'s "latest failures" until someone
acts. Two kinds of action resolve it for good:

- its file was replaced (the new content is a recording of its own) or deleted: `retry`
  finds out by fingerprinting the file as it is now, and dismisses the old row instead of
  re-queueing it under facts that no longer describe the file (that uploaded the new
  content twice, once under the old hash);
- an operator decides nothing is to be done: ``ingestd dismiss ID...``.

A dismissed recording needs nobody; it is counted, never listed as a failure, and its
content is not an "original" that later copies would be duplicates of.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from ingestd import replaced
from ingestd.errors import IngestdError
from ingestd.lifecycle import RESUMABLE_TERMINALS, State
from ingestd.replaced import FileNow
from ingestd.store import RecordingRow
from ingestd.transitions import Transitions


def before_retry(changes: Transitions, row: RecordingRow) -> str | None:
    """Check a rejected/failed row's file before `retry` re-queues it.

    Returns:
        None when the retry may go ahead (the file holds the recorded content, or the next
        step does not read it); else the line to print: the row was dismissed (file
        replaced or gone) or left alone (the file cannot be read to tell).
    """
    if not replaced.reads_source(row):
        return None
    store = changes.store
    verdict = replaced.compare(row)
    if verdict.now is FileNow.SAME:
        if row.sha256.startswith(replaced.UNREADABLE_FINGERPRINT) and verdict.sha256:
            store.update(row.id, sha256=verdict.sha256)  # readable now: its real fingerprint
        return None
    if verdict.now is FileNow.UNREADABLE:
        return (
            f"#{row.id} {row.relpath}: cannot check that its file is the one recorded "
            f"(unreadable, or its watch folder {row.watch_root} is missing); left {row.state}"
        )
    if verdict.now is FileNow.GONE:
        reason = replaced.gone_reason(row)
    else:
        reason = replaced.replaced_reason(row, replaced.successor(store, row, verdict))
    _dismiss(changes, row, reason)
    return f"#{row.id} {row.relpath}: {row.state} -> dismissed: {reason}"


def _dismiss(changes: Transitions, row: RecordingRow, reason: str) -> None:
    changes.change(row, State.DISMISSED, error=reason, facts={"reason": reason})


def cmd_dismiss(args: argparse.Namespace) -> int:
    """Dismiss rejected or failed recordings: they leave the failures list, for good."""
    from ingestd.commands import _load, _open_store, _transitions

    config = _load(args)
    store = _open_store(config)
    rows = []
    for recording_id in args.ids:
        try:
            rows.append(store.get(recording_id))
        except KeyError:
            raise IngestdError(
                f"no recording #{recording_id} in the state database; `ingestd status` lists them"
            ) from None
    changes = _transitions(config, store)
    left_alone = 0
    for row in rows:
        if row.state not in RESUMABLE_TERMINALS:
            print(f"#{row.id} {row.relpath}: {row.state}, not failed or rejected; left alone")
            left_alone += 1
            continue
        verdict = replaced.compare(row)
        what = {
            FileNow.GONE: "its file is gone",
            FileNow.CHANGED: "its file was replaced since",
            FileNow.SAME: "its file is unchanged",
            FileNow.UNREADABLE: "its file cannot be read",
        }[verdict.now]
        reason = f"dismissed by an operator ({what})"
        _dismiss(changes, row, reason)
        print(f"#{row.id} {row.relpath}: {row.state} -> dismissed ({what})")
    return 1 if left_alone else 0


def add_parser(sub: Any, with_config: Callable[[argparse.ArgumentParser], None]) -> None:
    p = sub.add_parser(
        "dismiss",
        help="drop failed or rejected recordings from the failures list",
        description="Mark failed or rejected recordings as dismissed: nothing more is done "
        "with them and `ingestd status` no longer lists them as failures. `ingestd retry` "
        "dismisses by itself the ones whose file was replaced or deleted.",
    )
    with_config(p)
    p.add_argument("ids", nargs="+", type=int, help="recording ids (`ingestd status` shows them)")
    p.set_defaults(func=cmd_dismiss, quiet_logging=True)
