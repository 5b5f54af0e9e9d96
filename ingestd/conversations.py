"""Which conversation a recording joins: asks the mapping hook and pins explicit ids.

Decided when a settled file is first recorded, before its row is written, so the row and
its key are one commit and every part of a conversation knows its key before any part is
submitted (the ordering gate needs it); decided again by the ``discovered`` stage for a
recording that has no key yet, so an ``ingestd retry`` after a fixed sidecar takes the new
answer.
"""

from __future__ import annotations

import structlog

from ingestd.model import EXISTING_CONVERSATION, NEW_CONVERSATION, Recording
from ingestd.plugins import Plugins
from ingestd.store import Store

log = structlog.get_logger()


def decide_conversation(
    store: Store, plugins: Plugins, recording: Recording
) -> tuple[str | None, str | None]:
    """Ask `ingestd_conversation_key`: ``(key, conversation id the key is pinned to)``.

    ``conversation:<id>`` keys pin the key to that id. Raises whatever the hook raises
    (`Rejected` for a bad sidecar, `PluginError`, ...).
    """
    key, plugin = plugins.call_first("ingestd_conversation_key", recording=recording, history=store)
    if key in (None, NEW_CONVERSATION):
        return None, None
    key = str(key)
    log.info("conversation_key_decided", relpath=recording.relpath, key=key, by=plugin)
    if key.startswith(EXISTING_CONVERSATION):
        return key, key.removeprefix(EXISTING_CONVERSATION)
    return key, None


def assign_conversation(store: Store, plugins: Plugins, recording: Recording) -> str | None:
    """`decide_conversation` for a stored recording without a key; store the answer."""
    key, pinned = decide_conversation(store, plugins, recording)
    if key is None:
        return None
    if pinned is not None:
        store.pin_conversation(key, pinned)
    store.update(recording.id, conversation_key=key)
    return key
