"""The two small state tables of what happens after a recording, pinned, and the store
refusing a change they do not allow."""

from __future__ import annotations

import pytest

from ingestd.lifecycle import (
    DELETION_TRANSITIONS,
    DISPOSAL_TRANSITIONS,
    Deletion,
    Disposal,
    TransitionError,
)


def _table(table: dict) -> dict[str, set[str]]:
    return {str(old): {str(n) for n in new} for old, new in table.items()}


def test_disposal_table_is_pinned() -> None:
    assert _table(DISPOSAL_TRANSITIONS) == {
        "planned": {"planned", "copied", "done", "held", "failed"},
        "copied": {"copied", "done", "failed"},
        "done": set(),
        "held": set(),
        "failed": {"planned"},
    }


def test_deletion_table_is_pinned() -> None:
    assert _table(DELETION_TRANSITIONS) == {
        "pending": {"pending", "deleted", "failed"},
        "deleted": set(),
        "failed": {"pending", "deleted", "failed"},
    }


def test_the_store_refuses_what_the_tables_forbid(tmp_path, store) -> None:
    """A done move never goes back; a deleted conversation is never pending again; the
    refused change writes nothing (both stores)."""
    try:
        row = store.insert(
            watch="w", watch_root=str(tmp_path), relpath="a.wav", size_bytes=1, mtime=1.0,
            sha256="x",
        )  # fmt: skip
        assert store.plan_disposal(row.id, "move", str(tmp_path / "done" / "a.wav"))
        assert not store.plan_disposal(row.id, "move", "elsewhere"), "planned once"
        store.mark_disposal(row.id, Disposal.COPIED)
        store.mark_disposal(row.id, Disposal.DONE)
        with pytest.raises(TransitionError):
            store.mark_disposal(row.id, Disposal.PLANNED, target="other")
        assert store.disposal(row.id)["state"] == "done"
        assert store.disposal(row.id)["target"] == str(tmp_path / "done" / "a.wav")
        store.request_deletion("42", "forget")
        store.mark_deletion("42", Deletion.DELETED)
        with pytest.raises(TransitionError):
            store.mark_deletion("42", Deletion.PENDING)
        assert store.deletion("42")["state"] == "deleted"
    finally:
        store.close()
