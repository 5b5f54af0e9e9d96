"""The ``ledger`` sink: one JSON file per conversation, replaced on every delivery.

::

    sinks:
      - {type: ledger, path: /srv/ledger}

Idempotent as ingestd asks: a delivery of the same conversation (an appended part, a crash
mid-delivery) rewrites the same file, atomically.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ingestd import DeliveryReceipt, OptionProblems, Result, Retryable, SinkContext


def make_ledger(options: Mapping[str, Any], context: SinkContext) -> LedgerSink:
    """``SinkFactory``: ``path`` is required (relative to the config file)."""
    problems = OptionProblems(context.key_path)
    problems.unknown_keys(options, ("path",))
    path = options.get("path")
    if not isinstance(path, str) or not path:
        problems.add("path", "required (the folder to write the ledger into)")
    problems.raise_if_any()
    base = context.config_path.parent if context.config_path else Path.cwd()
    return LedgerSink(context.name, base / str(path))


class LedgerSink:
    def __init__(self, name: str, folder: Path) -> None:
        self.name = name
        self.folder = folder

    async def deliver(self, result: Result) -> DeliveryReceipt:
        entry = {
            "conversation_id": result.conversation_id,
            "name": result.name,
            "parts": [part.relpath for part in result.parts],
            "messages": [m.get("text") for m in result.insights.messages],
        }
        target = self.folder / f"{result.conversation_id}.json"
        temporary = target.with_name(f".{target.name}.tmp")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            temporary.write_text(json.dumps(entry, indent=2))
            os.replace(temporary, target)
        except OSError as exc:
            raise Retryable(f"ledger: cannot write {target}: {exc.strerror}") from None
        return DeliveryReceipt(self.name, {"path": str(target)})

    async def aclose(self) -> None:
        pass
