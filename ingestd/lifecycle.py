"""The recording's state machine, in one place.

A file that has settled (its size and mtime stopped changing) is fingerprinted and stored
as ``discovered``. From there each state names the step that runs next; a step's outcome is
committed to the store before the next side effect, so a restart resumes every recording
from its last durable state::

    discovered ─> probed ─> transcoded ─> queued ─> submitting ─> submitted ─> fetching
        │                                   ^ ^         │              │         │
        │                                   │ └(nothing │              │         v
        │                                   │  arrived)─┘              │    delivering ─> done
        │                                   └──────(the job failed)────┘
        ├─> duplicate  (same size and content hash as an earlier recording)
        └─> rejected   (bad input: empty, not media, no audio; any stage before submitting)
    any non-terminal state ─> failed  (retries used up, or a permanent error)
    rejected, failed, and any state before submitting ─> dismissed  (nothing left to do)

Each step, and which plugin hook it calls (see `ingestd.hookspecs`):

- ``discovered`` — `ingestd_accept`, then `ingestd_probe` (ffprobe).
- ``probed`` — `ingestd_transcode_plan`; the core runs the plan and re-probes its output.
- ``transcoded`` — `ingestd_choose_endpoint`, `ingestd_set_parameters`,
  `ingestd_conversation_key`; the decisions are stored with the recording.
- ``queued`` — waits for its turn: earlier parts of the same conversation must be
  submitted first, and the account-wide job limit must have room.
- ``submitting`` — the intent (name, conversation, time) is written, then the upload runs.
  This is the one step that cannot be blindly repeated: after a crash the core asks the
  backend whether the upload arrived (`Backend.find_submission`) and **reconciles** instead
  of uploading again.
- ``submitted`` — conversationId and jobId are stored; the Job API is polled. A job the
  API failed sends the file back to ``queued``, to be submitted again after a back-off, up
  to ``pipeline.resubmit_failed_jobs`` times; then the recording is ``failed``.
- ``fetching`` — the job completed; insights are fetched and saved in the work directory.
- ``delivering`` — each configured sink is delivered and tracked on its own.

Transient errors keep the recording in its state with ``attempts`` and ``next_attempt_at``
updated (exponential back-off, Retry-After honoured); once attempts are used up it becomes
``failed``, remembering the state it failed in, so ``ingestd retry`` resumes exactly there
(a recording that failed while delivering is redelivered, never resubmitted).

A recording is ``dismissed`` when nothing is left to do for it and nobody needs to look at
it: its file was replaced (the new content is a recording of its own) or deleted before it
was uploaded, or an operator dismissed it (`ingestd dismiss`). Its content counts as never
processed, so a later copy of it is not a ``duplicate``. See `ingestd.replaced`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class State(StrEnum):
    """Where a recording is. Stored as its string value."""

    DISCOVERED = "discovered"  # settled, fingerprinted, recorded; next: accept + probe
    PROBED = "probed"  # media facts stored; next: transcode
    TRANSCODED = "transcoded"  # upload file ready and probed; next: endpoint, params, key
    QUEUED = "queued"  # decisions stored; waiting for order and account limit
    SUBMITTING = "submitting"  # intent stored, upload in flight; reconciled after a crash
    SUBMITTED = "submitted"  # conversationId + jobId stored; polling the job
    FETCHING = "fetching"  # job completed; fetching insights
    DELIVERING = "delivering"  # insights saved; delivering to each sink
    DONE = "done"  # every sink delivered
    FAILED = "failed"  # gave up: retries used up or permanent error (ingestd retry)
    REJECTED = "rejected"  # bad input; replace the file (or ingestd retry)
    DUPLICATE = "duplicate"  # same content as an earlier recording; nothing sent
    DISMISSED = "dismissed"  # file replaced or deleted before upload, or an operator said so

    @property
    def is_terminal(self) -> bool:
        """No stage runs for it; only an operator command moves it on."""
        return self not in PIPELINE


# Terminal states that `ingestd retry` can move back into the pipeline (or dismiss).
RESUMABLE_TERMINALS = frozenset({State.FAILED, State.REJECTED})

NEEDS_A_PERSON = (State.FAILED, State.REJECTED)
"""What `ingestd status` lists under "latest failures"."""

PIPELINE = (
    State.DISCOVERED,
    State.PROBED,
    State.TRANSCODED,
    State.QUEUED,
    State.SUBMITTING,
    State.SUBMITTED,
    State.FETCHING,
    State.DELIVERING,
)
"""The non-terminal states, in order; each has exactly one stage in `ingestd.pipeline`."""

PREPARING = (State.DISCOVERED, State.PROBED, State.TRANSCODED)
"""Local work before a recording may queue for the API: probe and transcode."""

IN_FLIGHT = (State.SUBMITTING, State.SUBMITTED)
"""Recordings that hold one of the account's concurrent jobs."""

_BEFORE_UPLOAD = (*PREPARING, State.QUEUED)

# Before submitting, a recording whose file was replaced under it is dismissed: its stage
# would read the new content under the old fingerprint (`ingestd.replaced`).
TRANSITIONS: dict[State, frozenset[State]] = {
    State.DISCOVERED: frozenset(
        {State.PROBED, State.DUPLICATE, State.REJECTED, State.FAILED, State.DISMISSED}
    ),
    State.PROBED: frozenset({State.TRANSCODED, State.REJECTED, State.FAILED, State.DISMISSED}),
    # Back to probed when its work file lies on a node that is gone (several nodes, each
    # with its own work directory): transcoded again where it is picked up.
    State.TRANSCODED: frozenset(
        {State.QUEUED, State.PROBED, State.REJECTED, State.FAILED, State.DISMISSED}
    ),
    State.QUEUED: frozenset(
        {State.SUBMITTING, State.PROBED, State.FAILED, State.REJECTED, State.DISMISSED}
    ),
    # Back to queued when the API refused the upload (429) or reconciliation shows that
    # nothing arrived; forward when it answered or reconciliation found the job.
    State.SUBMITTING: frozenset({State.SUBMITTED, State.QUEUED, State.FAILED}),
    # Back to queued when the API's job failed and the file is submitted again.
    State.SUBMITTED: frozenset({State.FETCHING, State.QUEUED, State.FAILED}),
    State.FETCHING: frozenset({State.DELIVERING, State.FAILED}),
    State.DELIVERING: frozenset({State.DONE, State.FAILED}),
    State.DONE: frozenset({State.DELIVERING}),  # `ingestd redeliver`
    # `ingestd retry` resumes where the recording failed (never re-uploads what arrived);
    # `ingestd dismiss`, or a retry that finds the file replaced or gone, dismisses.
    State.FAILED: frozenset({*PIPELINE, State.DISMISSED}),
    State.REJECTED: frozenset({State.DISCOVERED, State.DISMISSED}),
    State.DUPLICATE: frozenset(),
    State.DISMISSED: frozenset(),
}


class TransitionError(RuntimeError):
    """A transition the table does not allow: a bug in the core, never a user error."""


def check_transition(old: State, new: State) -> None:
    """Raise TransitionError unless the table allows ``old -> new``."""
    if new not in TRANSITIONS[old]:
        raise TransitionError(f"illegal transition {old} -> {new}")


def is_before_upload(state: State) -> bool:
    """True while nothing has been sent to the API (a rejection is still possible)."""
    return state in _BEFORE_UPLOAD


# -- after a recording: its file, and its conversation at the API --------------------------
#
# A recording's own states end at ``done`` or ``rejected``; what happens afterwards to its
# file (``after_success`` / ``after_rejected``) and to its conversation at the API
# (``symbl.delete_after_delivery``, ``symbl.delete_failed_conversations``, ``ingestd
# forget``) is tracked beside it, each with its own small table here.


class Disposal(StrEnum):
    """What became of a finished recording's file (``after_success``/``after_rejected``)."""

    PLANNED = "planned"  # the action and target are stored; nothing touched yet
    COPIED = "copied"  # move across file systems: a complete, fsynced copy at the target
    DONE = "done"  # moved (the target is the only copy) or deleted
    HELD = "held"  # not acted on: the file changed since its fingerprint, or is gone
    FAILED = "failed"  # an error the operator must look at (permissions, full disk)


DISPOSAL_TRANSITIONS: dict[Disposal, frozenset[Disposal]] = {
    Disposal.PLANNED: frozenset(
        {Disposal.PLANNED, Disposal.COPIED, Disposal.DONE, Disposal.HELD, Disposal.FAILED}
    ),
    # the target is complete: only the removal of the source is left (failed: a bug)
    Disposal.COPIED: frozenset({Disposal.COPIED, Disposal.DONE, Disposal.FAILED}),
    Disposal.DONE: frozenset(),
    Disposal.HELD: frozenset(),
    Disposal.FAILED: frozenset({Disposal.PLANNED}),  # the next start tries again
}


class Deletion(StrEnum):
    """A conversation to delete at the API, and how that went."""

    PENDING = "pending"  # to delete once every part of it is delivered; retried on errors
    DELETED = "deleted"  # the API deleted it (or no longer had it)
    FAILED = "failed"  # gave up after many tries; `ingestd forget ID` tries again


DELETION_TRANSITIONS: dict[Deletion, frozenset[Deletion]] = {
    Deletion.PENDING: frozenset({Deletion.PENDING, Deletion.DELETED, Deletion.FAILED}),
    Deletion.DELETED: frozenset(),
    Deletion.FAILED: frozenset({Deletion.PENDING, Deletion.DELETED, Deletion.FAILED}),
}


def check_aftermath(table: dict[Any, frozenset[Any]], old: Any, new: Any) -> None:
    """Raise TransitionError unless `table` (one of the two above) allows ``old -> new``."""
    if new not in table[old]:
        raise TransitionError(f"illegal transition {old} -> {new}")
