"""Which conversation a recording joins: asks the mapping hook and pins explicit ids.

Decided when a settled file is first recorded, so that every part of a conversation knows
its key before any part is submitted (the ordering gate needs it); decided again by the
``discovered`` stage for a recording that has no key yet, so an ``ingestd retry`` after a
fixed sidecar takes the new answer.
"""

from __future__ import annotations

import structlog

from ingestd.model import EXISTING_CONVERSATION, NEW_CONVERSATION, Recording
from ingestd.plugins import Plugins
from ingestd.store import Store

log = structlog.get_logger()


def assign_conversation(store: Store, plugins: Plugins, recording: Recording) -> str | None:
    """Ask `ingestd_conversation_key`, store the key, pin ``conversation:<id>`` keys.

    Raises whatever the hook raises (`Rejected` for a bad sidecar, `PluginError`, ...).
    """
    key, plugin = plugins.call_first("ingestd_conversation_key", recording=recording, history=store)
    if key in (None, NEW_CONVERSATION):
        return None
    key = str(key)
    if key.startswith(EXISTING_CONVERSATION):
        store.pin_conversation(key, key.removeprefix(EXISTING_CONVERSATION))
    store.update(recording.id, conversation_key=key)
    log.info("conversation_key_assigned", recording_id=recording.id, key=key, by=plugin)
    return key
