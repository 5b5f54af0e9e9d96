"""Deleting conversations at the API: for sites that must not leave transcripts there.

Symbl keeps a conversation until it is deleted. Three settings and a command ask for
deletions, each recorded in the store (``api_deletions``) before anything is sent, so a
restart carries on and `ingestd show` and `ingestd status` can tell:

- ``symbl.delete_after_delivery``: a conversation of its own is deleted once its recording
  is ``done`` (every sink confirmed delivery). A mapped conversation (parts appended under a
  key) is deleted only once no further part can arrive: after ``ingestd close KEY`` or
  ``conversation.close_after_minutes`` without a new part, and once every part is done.
- ``symbl.delete_failed_conversations``: when the API failed a job and the file was POSTed
  afresh, the abandoned conversation (no transcript, no other recording in it) is deleted
  once the replacement is submitted.
- ``ingestd forget ID`` deletes one at once (see `forget`).

A deletion never holds back a delivery: it runs beside the pipeline, is retried with a
back-off while the API cannot be reached, and is ``failed`` (shown) after many tries.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import structlog

from ingestd.config import Config
from ingestd.errors import Permanent, Retryable
from ingestd.lifecycle import PIPELINE, Deletion, State
from ingestd.logging import redact
from ingestd.model import EXISTING_CONVERSATION
from ingestd.registry import Backend
from ingestd.store import Store
from ingestd.wording import plural

log = structlog.get_logger()

WAIT_FOR_PARTS_SECONDS = 30.0
"""How often a deletion waiting for a conversation's parts to be done looks again."""


def abandoned_conversations(events: list[dict[str, Any]]) -> list[str]:
    """Conversations a recording POSTed and then left for another POST, oldest first.

    From its event history: a ``submitted`` that created a conversation (not an append),
    followed by a later ``submitted`` into a different conversation. Appends are never
    abandoned: the conversation is someone else's too.
    """
    posted: list[str] = []
    current: str | None = None
    for event in events:
        if event["new"] != str(State.SUBMITTED):
            continue
        facts = event["facts"]
        cid = facts.get("conversation_id")
        if not cid:
            continue
        if current is not None and cid != current and current not in posted:
            posted.append(current)
        created = facts.get("append") is False or facts.get("reconciled") is True
        current = cid if created else None
    return posted


def _flag(config: Config, key: str) -> bool:
    """A deletion setting of the chosen backend's section (``symbl.delete_after_delivery``)."""
    return config.backend_options.get(key) is True


def close_conversation(
    store: Store, config: Config, key: str, conversation_id: str | None = None
) -> str | None:
    """Unmap `key`: its next part starts a new conversation. With
    ``delete_after_delivery``, its conversation is deleted once every part is done.
    Returns the conversation id it mapped to (None: not mapped)."""
    closed = store.close_key(key, conversation_id)
    if closed is None:
        return None
    deleting = _flag(config, "delete_after_delivery") and not key.startswith(EXISTING_CONVERSATION)
    if deleting:
        store.request_deletion(closed, "closed")
    log.info("conversation_closed", key=key, conversation_id=closed, delete=deleting)
    return closed


class Deletions:
    """The daemon's side: notice what to delete (from new events), close quiet keys, and
    send the deletions that are due."""

    def __init__(self, config: Callable[[], Config], store: Store, backend: Backend) -> None:
        self._config = config
        self.store = store
        self.backend = backend

    @property
    def wanted(self) -> bool:
        config = self._config()
        return _flag(config, "delete_after_delivery") or _flag(
            config, "delete_failed_conversations"
        )

    def on_event(self, event: dict[str, Any]) -> None:
        """A recording reached ``done`` or ``submitted``: anything to delete now?"""
        config = self._config()
        new, rid = event["new"], event["recording_id"]
        if new == str(State.DONE) and _flag(config, "delete_after_delivery"):
            row = self.store.get(rid)
            cid = row.conversation_id
            if cid and not row.conversation_key and self.store.deletion(cid) is None:
                self.store.request_deletion(cid, "delivered", rid)
                log.info("conversation_deletion_requested", conversation_id=cid, why="delivered")
        elif new == str(State.SUBMITTED) and _flag(config, "delete_failed_conversations"):
            for cid in abandoned_conversations(self.store.events(rid)):
                if self.store.deletion(cid) is None and not self.store.conversation_in_use(cid):
                    self.store.request_deletion(cid, "abandoned", rid)
                    log.info(
                        "conversation_deletion_requested", conversation_id=cid, why="abandoned"
                    )

    def close_quiet_keys(self, now: float) -> None:
        """``conversation.close_after_minutes``: close keys whose newest part is older."""
        config = self._config()
        watches = {w.name: w for w in config.watches}
        for mapped in self.store.mapped_keys():
            watch = watches.get(mapped["watch"])
            minutes = (watch.conversation or {}).get("close_after_minutes") if watch else None
            if (
                not minutes
                or mapped["unsubmitted"]
                or mapped["key"].startswith(EXISTING_CONVERSATION)
            ):
                continue
            if now - mapped["latest"] >= float(minutes) * 60:
                close_conversation(self.store, config, mapped["key"], mapped["conversation_id"])

    async def send_due(self, now: float) -> None:
        due = self.store.deletions_due(now)
        await asyncio.gather(*(self._delete(d, now) for d in due))

    async def _delete(self, deletion: dict[str, Any], now: float) -> None:
        cid = deletion["conversation_id"]
        if deletion["reason"] in ("delivered", "closed"):
            parts = self.store.part_states(cid)
            mapped = any(m["conversation_id"] == cid for m in self.store.mappings())
            if mapped or any(s is not State.DONE for s in parts):
                # a part is still on its way (or failed: the operator decides), or a key was
                # pointed at it since: look again later, without counting an attempt
                self.store.mark_deletion(
                    cid, Deletion.PENDING, next_attempt_at=now + WAIT_FOR_PARTS_SECONDS
                )
                return
        elif deletion["reason"] == "abandoned" and self.store.conversation_in_use(cid):
            self.store.mark_deletion(
                cid, Deletion.FAILED, error="another recording uses it now; not deleted"
            )
            return
        attempts = deletion["attempts"] + 1
        delete = getattr(self.backend, "delete_conversation", None)
        if delete is None:
            self._give_up(cid, attempts, f"the {self.backend.name} backend cannot delete")
            return
        try:
            deleted = await delete(cid)
        except asyncio.CancelledError:
            raise
        except Retryable as exc:
            pipeline = self._config().pipeline
            if attempts >= pipeline.delivery_max_attempts:
                self._give_up(cid, attempts, f"{exc} (gave up after {attempts} attempts)")
                return
            from ingestd.pipeline import backoff_seconds

            delay = backoff_seconds(
                attempts, pipeline.retry_initial_seconds, pipeline.retry_max_seconds
            )
            if exc.retry_after:
                delay = max(delay, exc.retry_after)
            self.store.mark_deletion(
                cid,
                Deletion.PENDING,
                attempts=attempts,
                next_attempt_at=time.time() + delay,
                error=redact(str(exc)),
            )
            log.warning(
                "conversation_delete_retry", conversation_id=cid, attempt=attempts, error=str(exc)
            )
            return
        except Permanent as exc:
            self._give_up(cid, attempts, str(exc))
            return
        except Exception as exc:  # a backend's bug: this deletion fails, the daemon goes on
            log.exception("conversation_delete_crashed", conversation_id=cid)
            self._give_up(cid, attempts, f"internal error in the backend: {exc!r}")
            return
        self.store.mark_deletion(cid, Deletion.DELETED, attempts=attempts, error=None)
        log.info(
            "conversation_deleted_at_api",
            conversation_id=cid,
            reason=deletion["reason"],
            already_gone=not deleted,
        )

    def _give_up(self, cid: str, attempts: int, error: str) -> None:
        self.store.mark_deletion(cid, Deletion.FAILED, attempts=attempts, error=redact(error))
        log.error("conversation_delete_failed", conversation_id=cid, error=error)


# -- the commands ---------------------------------------------------------------------------


def add_parsers(sub: Any, with_config: Any) -> None:
    p = sub.add_parser("forget", help="delete a conversation at the API now")
    with_config(p)
    p.add_argument("conversation_id")
    p.set_defaults(func=cmd_forget)
    p = sub.add_parser("close", help="close a mapped conversation: no further part joins it")
    with_config(p)
    p.add_argument("key", help="the conversation key (`ingestd map` lists them)")
    p.set_defaults(func=cmd_close)


def cmd_forget(args: Any) -> int:
    """Delete one conversation at the API at once; keys mapped to it are forgotten first,
    so no part is appended to it meanwhile."""
    from ingestd.commands import _load, _open_store
    from ingestd.daemon import build_backend
    from ingestd.errors import IngestdError
    from ingestd.logging import configure
    from ingestd.plugins import load_plugins

    config = _load(args)
    configure("warning", "console")
    store = _open_store(config)
    cid = args.conversation_id
    keys = store.unmap_conversation(cid)
    store.request_deletion(cid, "forget")
    busy = [s for s in store.part_states(cid) if s in PIPELINE]
    backend = build_backend(config, load_plugins(config.plugins, config.disable_plugins))

    async def delete() -> bool:
        try:
            return await backend.delete_conversation(cid)
        finally:
            await backend.aclose()

    try:
        deleted = asyncio.run(delete())
    except (Retryable, Permanent) as exc:
        error = redact(str(exc))
        attempts = (store.deletion(cid) or {}).get("attempts", 0) + 1
        if (store.deletion(cid) or {}).get("state") != str(Deletion.DELETED):
            store.mark_deletion(cid, Deletion.FAILED, attempts=attempts, error=error)
        raise IngestdError(
            f"conversation {cid} was not deleted: {error}; run `ingestd forget {cid}` again"
        ) from None
    if (store.deletion(cid) or {}).get("state") != str(Deletion.DELETED):
        store.mark_deletion(cid, Deletion.DELETED, error=None)
    key_word = "key" if len(keys) == 1 else "keys"
    verb = "maps" if len(keys) == 1 else "map"
    unmapped = f"; {key_word} {', '.join(keys)} no longer {verb} to it" if keys else ""
    what = "deleted at the API" if deleted else "was not at the API (already deleted)"
    print(f"conversation {cid} {what}{unmapped}")
    if busy:
        print(
            f"  {plural(len(busy), 'recording')} of it {'was' if len(busy) == 1 else 'were'} "
            f"still in progress ({', '.join(busy)}): "
            f"their next request to the API for it fails"
        )
    return 0


def cmd_close(args: Any) -> int:
    """Close a key's conversation now (what ``close_after_minutes`` does by itself)."""
    from ingestd.commands import _load, _open_store
    from ingestd.errors import IngestdError

    config = _load(args)
    store = _open_store(config)
    waiting = [m for m in store.mapped_keys() if m["key"] == args.key and m["unsubmitted"]]
    cid = close_conversation(store, config, args.key)
    if cid is None:
        raise IngestdError(
            f"no conversation is mapped to key {args.key!r}; `ingestd map` lists the keys"
        )
    print(f"{args.key}: closed (conversation {cid}); its next part starts a new conversation")
    if waiting:
        print(
            f"  {plural(waiting[0]['unsubmitted'], 'recording')} with this key "
            f"{'is' if waiting[0]['unsubmitted'] == 1 else 'are'} not submitted yet: "
            f"they start the new conversation"
        )
    if store.deletion(cid) is not None:
        print(f"  {cid} is deleted at the API once every part of it is delivered")
    return 0
