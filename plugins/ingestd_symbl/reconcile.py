"""Finding a POST whose answer was lost: the upload tag, and the lookup by name.

Symbl has no idempotency key, so each POST carries a random tag in its ``metadata``
(``ingestdUploadId``): `prepare_upload` adds it, the core stores it with the start of the
upload before any byte leaves, and a resend keeps it. After a crash or a lost answer the core
asks `find_upload`, which lists the conversations of the same name created since the
attempt and adopts the one carrying the tag (`match_upload`). These are the optional
``prepare_upload``/``find_upload`` parts of `ingestd.registry.Backend`; the core knows
nothing of tags, names or metadata.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import structlog

from ingestd import Insights, Params, Permanent

log = structlog.get_logger()

UPLOAD_TAG_KEY = "ingestdUploadId"
"""The ``metadata`` key of the tag each POST carries: a random id per intent to upload, stored
with ``upload_started_at`` before any byte leaves and kept by resends, so a lookup can tell
this recording's conversation from another one of the same name."""


def upload_tag(params: Mapping[str, Any]) -> str | None:
    """The upload tag in `params`, or in a conversation object (both carry ``metadata``)."""
    metadata = params.get("metadata")
    tag = metadata.get(UPLOAD_TAG_KEY) if isinstance(metadata, Mapping) else None
    return tag if isinstance(tag, str) and tag else None


def with_upload_tag(params: Mapping[str, Any], tag: str) -> Params:
    """`params` with `tag` in its ``metadata`` object (other metadata keys are kept)."""
    metadata = params.get("metadata")
    kept = dict(metadata) if isinstance(metadata, Mapping) else {}
    return Params({**params, "metadata": {**kept, UPLOAD_TAG_KEY: tag}})


def match_upload(
    tag: str | None, candidates: Sequence[tuple[str, str | None]]
) -> tuple[str | None, list[str]]:
    """Which candidate is this recording's earlier upload: ``(id to adopt, ambiguous ids)``.

    `candidates` are ``(conversation id, its upload tag)``, newest first, already limited to
    the recording's name, the time of its attempt and ids the store does not know.

    - One carrying `tag` is ours (the newest, should a resend have landed too).
    - One carrying another tag is another recording's upload, never ours; and once the API
      shows tags, an untagged one is not ours either (ours carries `tag`).
    - Otherwise (the API drops ``metadata``, or the attempt predates tags) exactly one
      untagged candidate is ours; several are ambiguous and none is adopted: a guess could
      give this file another file's transcript.
    """
    if tag is not None:
        mine = [cid for cid, other in candidates if other == tag]
        if mine:
            return mine[0], []
        if any(other is not None for _, other in candidates):
            return None, []
    untagged = [cid for cid, other in candidates if other is None]
    if len(untagged) == 1:
        return untagged[0], []
    return None, untagged


class TaggedUploads:
    """`prepare_upload` and `find_upload` for a backend with Symbl's conversation API
    (`find_conversations` by name, `fetch_insights` for a conversation's metadata)."""

    async def find_conversations(self, name: str, created_after: float) -> list[str]:
        raise NotImplementedError

    async def fetch_insights(self, conversation_id: str, kinds: Iterable[str]) -> Insights:
        raise NotImplementedError

    def prepare_upload(
        self, params: Params, *, conversation_id: str | None, resend: bool
    ) -> Params:
        """A new conversation's POST gets a fresh tag, a resend keeps its own; appends
        cannot be looked up, so they carry none."""
        if conversation_id is not None:
            return params
        tag = upload_tag(params) if resend else None
        return with_upload_tag(params, tag or uuid.uuid4().hex)

    async def find_upload(
        self, params: Params, *, started_at: float, exclude: set[str]
    ) -> str | None:
        """The conversation the POST with these params created, or None (not found, or
        several untagged ones that cannot be told apart)."""
        name = str(params.get("name") or "")
        found = await self.find_conversations(name, started_at)
        candidates = [c for c in found if c not in exclude]
        tag = upload_tag(params)
        tags = await asyncio.gather(*(self._upload_tag_of(c) for c in candidates))
        tagged = [(c, t) for c, (gone, t) in zip(candidates, tags, strict=True) if not gone]
        adopted, ambiguous = match_upload(tag, tagged)
        log.info(
            "submission_reconciling",
            name=name,
            found=len(found),
            candidates=len(candidates),
            tag_matches=sum(1 for _, t in tagged if tag is not None and t == tag),
            adopted=adopted,
        )
        if ambiguous:
            log.warning(
                "submission_reconcile_ambiguous",
                candidates=ambiguous,
                action="none adopted; uploading again once the earlier upload cannot land, "
                "the candidates are left as they are",
            )
        return adopted

    async def _upload_tag_of(self, conversation_id: str) -> tuple[bool, str | None]:
        """``(gone, tag)`` of a candidate conversation; gone when it was deleted since (404)."""
        try:
            insights = await self.fetch_insights(conversation_id, ())
        except Permanent as exc:
            if exc.status == 404:
                return True, None
            raise
        return False, upload_tag(insights.conversation)
