"""One short async stage per non-terminal state; the only caller of the stage hooks.

`Pipeline.run_stage` runs the stage of a recording's current state and records its outcome:
the next state, a back-off (Retryable), ``rejected`` (bad input) or ``failed``. The
protocol itself is told in `ingestd.lifecycle`; `ingestd.daemon` decides when each
recording's stage runs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import json
import os
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import IO, Any

import structlog

from ingestd import jsontext, replaced
from ingestd.backends import job_limit
from ingestd.config import Config
from ingestd.conversations import assign_conversation
from ingestd.errors import (
    ConfigError,
    DiskFull,
    IngestdError,
    LeaseLost,
    Permanent,
    PluginError,
    RateLimited,
    Rejected,
    Retryable,
    StoreError,
    UnknownJob,
)
from ingestd.fitting import fit_upload, remove_pieces
from ingestd.joblimit import effective_job_limit, note_rate_limited
from ingestd.lifecycle import IN_FLIGHT, State, is_before_upload
from ingestd.logging import redact
from ingestd.metrics import record_retry
from ingestd.model import (
    AS_IS,
    Endpoint,
    Insights,
    JobStatus,
    Media,
    Params,
    Recording,
    Result,
    TranscodePlan,
    Upload,
)
from ingestd.pathmap import localize
from ingestd.plugins import Plugins
from ingestd.registry import Backend, Sink
from ingestd.store import RecordingRow, Store
from ingestd.store.base import JobSlotTaken
from ingestd.transcode import output_path, remove_output, run_plan
from ingestd.transitions import Transitions, recording_of

log = structlog.get_logger()

ADOPTED_JOB_TIMEOUT_SECONDS = 6 * 3600
RATE_LIMITED_PAUSE_SECONDS = 2.0
"""The least a recording refused with a 429 waits before it may be submitted again (it
also waits for a job slot under the lowered limit)."""
DISK_FULL_RECHECK_SECONDS = 30.0
"""The longest wait between tries while the work directory is full."""
PLANNING_LIMIT_SECONDS = 1.0
"""How old the job limit the dispatcher plans with may be (`Pipeline.job_limit`)."""
JUST_SAVED_KEPT = 16
"""Insights kept in memory for their delivery (`Pipeline._save_insights`): that delivery
follows at once, so only those whose recording another node took on linger."""


def backoff_seconds(attempt: int, initial: float, maximum: float) -> float:
    """Exponential back-off with full jitter (attempt 1 waits up to `initial`)."""
    return random.uniform(initial / 2, min(maximum, initial * 2 ** (attempt - 1)))


# -- reconciling a POST whose answer was lost ------------------------------------------------

RESTART_GRACE_SECONDS = 30.0
"""How long after this run started an upload of an earlier run may still land (its answer
was lost with that run, and how the upload ended is unknown). A backend says the same for
the uploads of this run: `Retryable` errors with a ``may_land_within_seconds`` attribute.
Only backends that can look an upload up (``find_upload``) are waited for; the tag that
tells their uploads apart is theirs (`ingestd.registry.Backend`)."""


def look_again_in(doubt: tuple[float, float] | None, now: float) -> float | None:
    """Seconds until the next lookup while an upload may still land; None: it cannot now.

    `doubt` is ``(given up at, may land until)`` for an upload whose answer was lost, None
    for one that ended with an answer. Gaps grow with the time already waited (1 s, then
    doubling); the last lookup falls at "may land until", after which nothing is awaited.
    """
    if doubt is None:
        return None
    since, until = doubt
    if now >= until:
        return None
    return min(until - now, max(1.0, now - since))


class Pipeline:
    """Runs stages and records their outcome in the store."""

    def __init__(
        self,
        config: Config,
        store: Store,
        plugins: Plugins,
        backend: Backend,
        sinks: Mapping[str, Sink],
        *,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.config = config
        self.store = store
        self.plugins = plugins
        self.backend = backend
        self.sinks = dict(sinks)
        self.on_change = on_change
        self.watches = {w.name: w for w in config.watches}
        self.transitions = Transitions(
            store, plugins, self.recording, on_change=lambda: self.on_change()
        )
        # ffmpeg is CPU-bound: at most this many run at once, whatever else is going on
        self._transcodes = asyncio.Semaphore(config.pipeline.transcode_workers)
        # Uploads of this run whose answer was lost: (given up at, may land until); None once
        # one ended with an answer. A recording missing here was last sent by an earlier run.
        self._in_doubt: dict[int, tuple[float, float] | None] = {}
        started = time.time()
        self._earlier_run_doubt = (started, started + RESTART_GRACE_SECONDS)
        self._planning_limit: tuple[float, int] | None = None  # (read at, limit): job_limit
        # recording id -> the row as the running stage's last write left it (`run_stage`;
        # None: nothing written yet); only while the stage runs
        self._written: dict[int, RecordingRow | None] = {}
        # insights file -> the insights this process just saved there, for the delivery that
        # follows the fetch at once (`_insights_here`); taken by it, at most a few kept
        self._just_saved: OrderedDict[str, Insights] = OrderedDict()
        self._stages: dict[State, Callable[[RecordingRow], Awaitable[None]]] = {
            State.DISCOVERED: self._discovered,
            State.PROBED: self._probed,
            State.TRANSCODED: self._transcoded,
            State.QUEUED: self._queued,
            State.SUBMITTING: self._submitting,
            State.SUBMITTED: self._submitted,
            State.FETCHING: self._fetching,
            State.DELIVERING: self._delivering,
        }

    # -- helpers -------------------------------------------------------------------------

    def recording(self, row: RecordingRow) -> Recording:
        """The plugin-facing view of a row (with a stand-in watch if it left the config)."""
        return recording_of(row, self.watches)

    def transition(self, row: RecordingRow, new: State, **kwargs: Any) -> RecordingRow:
        """Commit a state change, then log it and tell the plugins (`Transitions.change`)."""
        updated = self.transitions.change(row, new, **kwargs)
        if row.id in self._written:
            self._written[row.id] = updated
        return updated

    def _update(self, recording_id: int, **columns: Any) -> RecordingRow:
        """`Store.update`, remembering the row it wrote (`run_stage`)."""
        updated = self.store.update(recording_id, **columns)
        if recording_id in self._written:
            self._written[recording_id] = updated
        return updated

    # -- the driver ----------------------------------------------------------------------

    def current(self, recording_id: int) -> RecordingRow:
        """The recording as it now stands, its files under this node's mounts."""
        return localize(self.store.get(recording_id), self.watches)

    async def run_stage(self, row: RecordingRow) -> RecordingRow:
        """Run the stage of `row.state` once; return the row as it now stands."""
        stage = self._stages[row.state]
        row = localize(row, self.watches)
        self._written[row.id] = None  # a stage runs: its writes are remembered
        try:
            return await self._run_stage(stage, row)
        finally:
            self._written.pop(row.id, None)

    async def _run_stage(
        self, stage: Callable[[RecordingRow], Awaitable[None]], row: RecordingRow
    ) -> RecordingRow:
        try:
            if await self._replaced_under_it(row):
                return self._as_written(row.id)
            await stage(row)
        except LeaseLost:
            raise  # another node has it now: nothing of this node's may be written
        except Rejected as exc:
            self._give_up(
                row, State.REJECTED if is_before_upload(row.state) else State.FAILED, str(exc)
            )
        except Retryable as exc:
            self._retry_later(row, exc)
        except (Permanent, PluginError, ConfigError) as exc:
            self._give_up(row, State.FAILED, str(exc))
        except StoreError:
            raise  # the recording is not at fault, and its state cannot be written now
        except IngestdError as exc:
            self._give_up(row, State.FAILED, str(exc))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug: keep the traceback, keep the daemon
            log.exception("stage_crashed", state=str(row.state))
            self._give_up(row, State.FAILED, f"internal error in stage {row.state}: {exc!r}")
        return self._as_written(row.id)

    def _as_written(self, recording_id: int) -> RecordingRow:
        """The recording as the stage's last write left it (the store returns the row it
        committed), or as read now when the stage wrote nothing of it through `transition`
        or `_update`: one read fewer per stage."""
        written = self._written.pop(recording_id, None)
        if written is None:
            return self.current(recording_id)
        return localize(written, self.watches)

    async def _replaced_under_it(self, row: RecordingRow) -> bool:
        """Dismiss `row` when its file, which its next step reads (probe, transcode; an
        upload as is: see `_submitting`), holds other content now: that content is a
        recording of its own (`ingestd.replaced`).

        Only in the preparing states here: a queued recording's first step must reach
        ``submitting`` without waiting, as the dispatcher counts job slots from the store.
        """
        if row.state not in (State.DISCOVERED, State.PROBED):
            return False
        verdict = await replaced.compare_soon(row)
        if verdict.now is not replaced.FileNow.CHANGED:
            return False
        self._dismiss_replaced(row, verdict)
        return True

    def _dismiss_replaced(self, row: RecordingRow, verdict: replaced.Verdict) -> None:
        reason = replaced.replaced_reason(row, replaced.successor(self.store, row, verdict))
        self.transition(row, State.DISMISSED, error=reason, facts={"reason": reason})
        log.warning("recording_dismissed", reason=reason)

    def _retry_later(self, row: RecordingRow, exc: Retryable) -> None:
        current = self.store.get(row.id)
        attempts = current.attempts + 1
        pipeline = self.config.pipeline
        waits = isinstance(exc, DiskFull)  # not the file's fault: wait, however long
        if attempts >= pipeline.max_attempts and not waits:
            self._give_up(current, State.FAILED, f"{exc} (gave up after {attempts} attempts)")
            return
        delay = backoff_seconds(
            attempts,
            pipeline.retry_initial_seconds,
            min(pipeline.retry_max_seconds, DISK_FULL_RECHECK_SECONDS)
            if waits
            else pipeline.retry_max_seconds,
        )
        if exc.retry_after is not None:
            delay = max(delay, exc.retry_after)
        self._update(
            row.id, attempts=attempts, next_attempt_at=time.time() + delay, error=redact(str(exc))
        )
        record_retry("stage")
        log.warning(
            "stage_retry_scheduled",
            state=str(current.state),
            attempt=attempts,
            retry_in_s=round(delay, 2),
            error=str(exc),
        )
        self.on_change()

    def _give_up(
        self,
        row: RecordingRow,
        new: State,
        error: str,
        *,
        resume: State | None = None,
        unmap: tuple[str, str] | None = None,
    ) -> None:
        error = redact(error)  # stored, and given to plugins: errors may quote credentials
        current = self.store.get(row.id)
        self.transition(
            current,
            new,
            facts={"error": error},
            error=error,
            failed_from=str(resume or current.state),
            attempts=current.attempts,
            unmap=unmap,
        )
        log.error(
            "recording_finished",
            outcome=str(new),
            error=error,
            attempts=current.attempts,
            seconds=round(time.time() - current.created_at, 3),
        )

    # -- stages --------------------------------------------------------------------------

    async def _discovered(self, row: RecordingRow) -> None:
        """accept, then probe (in a thread: the probe hook may block)."""
        recording = self.recording(row)
        if not row.path.exists():
            raise Rejected(f"{row.relpath} disappeared before it could be processed")
        if row.conversation_key is None:  # e.g. retried after its sidecar was fixed
            key = assign_conversation(self.store, self.plugins, recording)
            recording = dataclasses.replace(recording, conversation_key=key)
        for accepted, plugin in self.plugins.call_all("ingestd_accept", recording=recording):
            if accepted is False:
                raise Rejected(f"{row.relpath} was rejected by plugin {plugin!r}")
        media, plugin = await asyncio.to_thread(
            self.plugins.call_first, "ingestd_probe", recording=recording
        )
        if media is None:
            raise Permanent("no plugin could probe the file (is the ffmpeg plugin disabled?)")
        self.transition(
            row,
            State.PROBED,
            media=media.to_dict(),
            facts={"kind": media.kind, "probed_by": plugin},
        )

    async def _probed(self, row: RecordingRow) -> None:
        """Decide and run the transcode, then probe what will be uploaded."""
        recording = self.recording(row)
        media = Media.from_dict(row.media or {})
        plan, plugin = self.plugins.call_first(
            "ingestd_transcode_plan", recording=recording, media=media
        )
        if plan is None or plan == AS_IS or not plan.argv:
            upload, upload_media, how = row.path, media, AS_IS.description
        else:
            assert isinstance(plan, TranscodePlan)
            async with self._transcodes:
                started = time.monotonic()
                log.info("transcode_started", plan=plan.description, by=plugin)
                target = output_path(self.config.work_dir, row.id, plan)
                upload = await run_plan(plan, row.path, target)
            log.info(
                "transcode_finished",
                plan=plan.description,
                reencoded=plan.reencodes,
                seconds=round(time.monotonic() - started, 3),
            )
            probe_target = dataclasses.replace(recording, path=upload)
            upload_media, _ = await asyncio.to_thread(
                self.plugins.call_first, "ingestd_probe", recording=probe_target
            )
            if upload_media is None:
                raise Permanent(f"the transcoded file {upload} could not be probed")
            how = plan.description
        self.transition(
            row,
            State.TRANSCODED,
            upload_path=str(upload),
            upload_media=upload_media.to_dict(),
            upload_size_bytes=upload.stat().st_size,
            facts={"transcode": how},
        )

    async def _transcoded(self, row: RecordingRow) -> None:
        """Endpoint, parameters and name: pure decisions, stored before queueing."""
        recording = self.recording(row)
        media = Media.from_dict(row.upload_media or {})
        endpoint, plugin = self.plugins.call_first(
            "ingestd_choose_endpoint", recording=recording, media=media
        )
        if endpoint is None:
            raise Permanent("no plugin chose an endpoint (is the routing plugin disabled?)")
        params = Params()
        self.plugins.call_all(
            "ingestd_set_parameters",
            recording=recording,
            media=media,
            endpoint=endpoint,
            params=params,
        )
        name = str(params.get("name") or row.path.stem)
        params["name"] = name
        self.transition(
            row,
            State.QUEUED,
            endpoint=endpoint.to_dict(),
            params=dict(params),
            name=name,
            facts={"endpoint": str(endpoint.kind), "chosen_by": plugin},
        )

    async def _queued(self, row: RecordingRow) -> None:
        """Its turn came (the daemon checked order and the account limit): record intent.

        The store checks both again in the same transaction: another node sharing the
        database may have taken the last job slot, or be submitting an earlier part."""
        if self._work_file_gone(row):
            return
        try:
            self.transition(row, State.SUBMITTING, job_limit=self.job_limit())
        except JobSlotTaken as exc:
            log.debug("submission_deferred", reason=str(exc))

    def job_limit(self, *, planning: bool = False) -> int:
        """Jobs that may be in flight at the API now, from every node together: the
        backend's limit, lowered for a while after a 429 (`ingestd.joblimit`).

        With `planning` (the dispatcher, many times a second under load) a reading up to
        `PLANNING_LIMIT_SECONDS` old will do: the ``queued -> submitting`` transaction checks
        against a fresh one, so a stale figure costs a deferred start at most."""
        now = time.time()
        if planning and self._planning_limit is not None:
            read_at, limit = self._planning_limit
            if 0 <= now - read_at < PLANNING_LIMIT_SECONDS:
                return limit
        limit = effective_job_limit(
            self.store,
            self.backend.name,
            job_limit(self.backend),
            now,
            self.config.pipeline.job_limit_recovery_seconds,
        )
        self._planning_limit = (now, limit)
        return limit

    def _rate_limited(self, row: RecordingRow, exc: RateLimited) -> None:
        """The API refused the upload for the account's limit: nothing arrived. Back to the
        queue for a slot, without spending an attempt; the limit is lowered when slots
        looked free (somebody else uses the account)."""
        now = time.time()
        others = self.store.count_states(IN_FLIGHT) - 1
        self._planning_limit = None  # lowered, perhaps: the dispatcher reads it again
        note_rate_limited(
            self.store,
            self.backend.name,
            job_limit(self.backend),
            others,
            now,
            self.config.pipeline.job_limit_recovery_seconds,
        )
        wait = max(exc.retry_after or 0.0, RATE_LIMITED_PAUSE_SECONDS)
        self.transition(
            row,
            State.QUEUED,
            attempts=row.attempts,
            upload_started_at=None,
            next_attempt_at=now + wait,
            facts={"rate_limited": str(exc), "in_flight": others},
        )

    def _work_file_gone(self, row: RecordingRow) -> bool:
        """Transcode again when the work file is not here (made by a node that is gone, or
        deleted): before the upload, a stage is run again rather than failed."""
        if not row.upload_path or Path(row.upload_path) == row.path:
            return False
        if os.path.exists(row.upload_path):
            return False
        if row.state is State.SUBMITTING:
            row = self.transition(row, State.QUEUED, facts={"work_file_missing": row.upload_path})
        self.transition(
            row,
            State.PROBED,
            upload_path=None,
            facts={"work_file_missing": row.upload_path, "action": "transcoding again"},
        )
        log.warning(
            "transcoding_again",
            work_file=row.upload_path,
            reason="the work file is not on this node (made by a node that is gone, or deleted)",
        )
        return True

    def adopted(self, row: RecordingRow) -> None:
        """`row` was taken over from a node whose lease ran out: an upload that node had
        started may still land, so it is looked up before anything is sent again."""
        if row.state is State.SUBMITTING and row.id not in self._in_doubt:
            now = time.time()
            self._in_doubt[row.id] = (now, now + RESTART_GRACE_SECONDS)

    async def _submitting(self, row: RecordingRow) -> None:
        """Upload (POST or PUT), after reconciling any earlier attempt whose answer was lost."""
        key = row.conversation_key
        conversation_id = self.store.conversation_for(key) if key else None
        if row.upload_started_at is not None and conversation_id is None:
            adopted, look_again_at = await self._reconcile_new_conversation(row)
            if look_again_at is not None:  # the earlier upload may still land: not yet
                self._update(row.id, next_attempt_at=look_again_at)
                self.on_change()
                return
            if adopted:
                self.transition(
                    row,
                    State.SUBMITTED,
                    conversation_id=adopted,
                    job_id=None,
                    mapping=(key, adopted, row.name) if key else None,
                    facts={"conversation_id": adopted, "reconciled": True},
                )
                return
        elif row.upload_started_at is not None:
            log.warning(
                "append_reconcile_unknown",
                conversation_id=conversation_id,
                action="sending the part again (appends cannot be looked up)",
            )
        if self._work_file_gone(row):
            return
        if Path(row.upload_path or row.path) == row.path:  # the original goes as is
            verdict = await replaced.compare_soon(row)
            if verdict.now is replaced.FileNow.CHANGED:
                # Replaced since it was recorded (say, while this upload backed off): none
                # of the new content is sent under this row; out through the queue.
                row = self.transition(row, State.QUEUED, facts={"source_changed": True})
                self._dismiss_replaced(row, verdict)
                return
        endpoint = Endpoint.from_dict(row.endpoint or {})
        upload = None
        if not endpoint.kind.is_url:
            path = Path(row.upload_path or row.path)
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                raise Rejected(f"{row.relpath}: the file to upload ({path}) is gone") from None
            upload = Upload(path=path, size_bytes=size, content_type=endpoint.content_type)
        params = Params(row.params or {})
        prepare = getattr(self.backend, "prepare_upload", None)
        if prepare is not None:  # e.g. a tag to find this upload by, kept by a resend
            resend = row.upload_started_at is not None
            params = prepare(params, conversation_id=conversation_id, resend=resend)
        # params and start are durable before any byte leaves: a restart can look them up
        self._update(row.id, upload_started_at=time.time(), params=dict(params))
        structlog.contextvars.bind_contextvars(conversation_id=conversation_id)
        try:
            upload = await fit_upload(
                self.plugins, self.backend, upload, self.config.work_dir, row.id
            )
            submission = await self.backend.submit(endpoint, upload, params, conversation_id)
        except RateLimited as exc:  # an answer: nothing arrived
            self._in_doubt.pop(row.id, None)
            self._rate_limited(row, exc)
            return
        except Retryable as exc:  # did the API get it? Only a lost answer leaves doubt
            within = getattr(exc, "may_land_within_seconds", None)
            now = time.time()
            self._in_doubt[row.id] = (now, now + within) if within is not None else None
            raise
        finally:
            remove_pieces(self.config.work_dir, row.id)
        self._in_doubt.pop(row.id, None)
        structlog.contextvars.bind_contextvars(
            conversation_id=submission.conversation_id, job_id=submission.job_id
        )
        self.transition(
            row,
            State.SUBMITTED,
            conversation_id=submission.conversation_id,
            job_id=submission.job_id,
            mapping=(key, submission.conversation_id, row.name)
            if key and not conversation_id
            else None,
            facts={
                "conversation_id": submission.conversation_id,
                "job_id": submission.job_id,
                "append": conversation_id is not None,
            },
        )

    async def _reconcile_new_conversation(
        self, row: RecordingRow
    ) -> tuple[str | None, float | None]:
        """Find the conversation an earlier POST of this recording created.

        Returns ``(id, None)`` to adopt it, ``(None, when)`` to look again at UNIX time `when`
        (that POST may still land), or ``(None, None)`` to upload again. The backend looks
        (``find_upload``, by whatever it put in the params with ``prepare_upload``).
        """
        assert row.upload_started_at is not None and row.name is not None
        find = getattr(self.backend, "find_upload", None)
        if find is None:  # the backend cannot look uploads up: sending again is its answer
            return None, None
        adopted = await find(
            Params(row.params or {}),
            started_at=row.upload_started_at,
            exclude=self.store.known_conversation_ids(),
        )
        if adopted is not None:
            self._in_doubt.pop(row.id, None)
            return adopted, None
        now = time.time()
        doubt = self._in_doubt.get(row.id, self._earlier_run_doubt)
        wait = look_again_in(doubt, now)
        if doubt is not None and wait is not None:
            log.info(
                "submission_reconcile_waiting",
                lost_for_s=round(now - doubt[0], 3),
                look_again_in_s=round(wait, 3),
                gives_up_in_s=round(doubt[1] - now, 3),
            )
            return None, now + wait
        self._in_doubt.pop(row.id, None)
        return None, None

    async def _submitted(self, row: RecordingRow) -> None:
        """Wait for the job (or, for an adopted conversation, for its messages)."""
        assert row.conversation_id is not None
        structlog.contextvars.bind_contextvars(
            conversation_id=row.conversation_id, job_id=row.job_id
        )
        if row.job_id is None:
            ready = await self.backend.wait_for_messages(
                row.conversation_id, timeout_seconds=ADOPTED_JOB_TIMEOUT_SECONDS
            )
            if not ready:
                raise Retryable("the adopted conversation has no messages yet")
            status = JobStatus.COMPLETED
        else:
            duration = (row.upload_media or {}).get("duration_seconds")
            try:
                status = await self.backend.wait_for_job(row.job_id, expected_seconds=duration)
            except UnknownJob as exc:
                # The API forgot the job (an embedded sandbox does when the daemon restarts):
                # only a new upload can help, and that is the operator's call.
                error = (
                    f"the API does not know job {row.job_id} any more ({exc}); "
                    f"`ingestd retry {row.id}` submits the file again"
                )
                unmap = self._mapping_posted_by(row)
                self._give_up(row, State.FAILED, error, resume=State.QUEUED, unmap=unmap)
                return
        if status is JobStatus.FAILED:
            self._job_failed(row)
            return
        self.transition(row, State.FETCHING, facts={"job_status": str(status)})

    def _job_failed(self, row: RecordingRow) -> None:
        """The API failed the job: submit the file again after a back-off, a few times.

        The API says nothing of why, and its own trouble passes; a file it cannot read fails
        every time, so the resubmissions are few (``pipeline.resubmit_failed_jobs``), then
        the recording is ``failed`` with the reason. A new conversation is POSTed afresh
        (the failed one is left at the API, without a transcript); a part appended to a
        mapped conversation is PUT into it again. Giving up forgets the mapping the same way,
        so an ``ingestd retry`` POSTs afresh too instead of appending to the failed one.
        """
        pipeline = self.config.pipeline
        failures = self.store.failed_jobs(row.id) + 1
        unmap = self._mapping_posted_by(row)
        if failures > pipeline.resubmit_failed_jobs:
            tries = f"{failures} jobs failed" if failures > 1 else "the job failed"
            error = (
                f"the Symbl job {row.job_id} failed ({tries}); `ingestd retry {row.id}` "
                f"submits the file again"
            )
            self._give_up(row, State.FAILED, error, resume=State.QUEUED, unmap=unmap)
            return
        delay = backoff_seconds(
            failures, pipeline.retry_initial_seconds, pipeline.retry_max_seconds
        )
        self.transition(
            row,
            State.QUEUED,
            unmap=unmap,
            facts={
                "job_failed": row.job_id,
                "failed_jobs": failures,
                "retry_in_s": round(delay, 2),
            },
            next_attempt_at=time.time() + delay,
            error=f"the Symbl job {row.job_id} failed; submitting the file again",
            upload_started_at=None,
            conversation_id=None,
            job_id=None,
        )

    def _mapping_posted_by(self, row: RecordingRow) -> tuple[str, str] | None:
        """(key, conversationId) if this recording's last upload POSTed its conversation: a
        failed job's mapping goes with it, so the next POST creates another."""
        submitted = [e for e in self.store.events(row.id) if e["new"] == str(State.SUBMITTED)]
        posted = bool(submitted) and submitted[-1]["facts"].get("append") is False
        key = row.conversation_key
        return (key, row.conversation_id) if key and posted and row.conversation_id else None

    async def _fetching(self, row: RecordingRow) -> None:
        """Fetch the conversation's insights; save them durably before delivering."""
        assert row.conversation_id is not None
        insights = await self.backend.fetch_insights(
            row.conversation_id, self.config.pipeline.fetch
        )
        path = self.config.work_dir / "insights" / f"{row.conversation_id}.json"
        await self._save_insights(path, insights)
        self.transition(
            row,
            State.DELIVERING,
            insights_path=str(path),
            deliveries=list(self.sinks),
            facts={"messages": len(insights.messages)},
        )

    async def _save_insights(self, path: Path, insights: Insights) -> None:
        """Save `insights` durably at `path` and keep them for the delivery that follows, so
        it need not read and parse them back (a file read and a JSON parse per recording)."""
        await asyncio.to_thread(_write_json_atomically, path, insights.to_dict())
        self._just_saved[str(path)] = insights
        self._just_saved.move_to_end(str(path))
        while len(self._just_saved) > JUST_SAVED_KEPT:  # deliveries another node took on
            self._just_saved.popitem(last=False)

    async def _insights_here(self, row: RecordingRow) -> Insights:
        """The insights `_fetching` saved; fetched again when their file is not on this node
        (several nodes: another node fetched them into its own work directory and died, or
        let go while a sink waited for its retry). Reading them again changes nothing at
        the API, and the sinks' outbox goes on where it stood."""
        assert row.conversation_id is not None and row.insights_path is not None
        saved = self._just_saved.pop(row.insights_path, None)
        if saved is not None:  # what the file holds: this process wrote it last
            return saved
        try:
            data = await asyncio.to_thread(jsontext.read, row.insights_path)
        except FileNotFoundError:
            pass
        else:
            return Insights.from_dict(data)
        insights = await self.backend.fetch_insights(
            row.conversation_id, self.config.pipeline.fetch
        )
        path = self.config.work_dir / "insights" / f"{row.conversation_id}.json"
        await asyncio.to_thread(_write_json_atomically, path, insights.to_dict())
        self._update(row.id, insights_path=str(path))
        log.info("insights_fetched_again", missing=row.insights_path, saved=str(path))
        return insights

    async def _delivering(self, row: RecordingRow) -> None:
        """Deliver to every sink still pending; each is tracked and retried on its own."""
        assert row.conversation_id is not None and row.insights_path is not None
        # The conversation's newest insights: a later part may have fetched more since.
        insights = await self._insights_here(row)
        part_rows = self.store.parts_of(row.conversation_id)
        parts = tuple(self.recording(p) for p in part_rows)
        name = (part_rows[0].name if part_rows else None) or row.name or row.path.stem
        result = Result(
            name=name,
            recording=self.recording(row),
            parts=parts,
            insights=insights,
            previous=self.store.previous_receipts(row.conversation_id),
            notice=getattr(self.backend, "insights_notice", None),
        )
        now = time.time()
        pending = [d for d in self.store.deliveries(row.id) if d["state"] == "pending"]
        due = [d for d in pending if d["next_attempt_at"] <= now]
        await asyncio.gather(*(self._deliver_one(row, result, d) for d in due))
        deliveries = self.store.deliveries(row.id)
        failed = [d for d in deliveries if d["state"] == "failed"]
        waiting = [d for d in deliveries if d["state"] == "pending"]
        if waiting:
            self._update(row.id, next_attempt_at=min(d["next_attempt_at"] for d in waiting))
            self.on_change()
        elif failed:
            errors = "; ".join(f"{d['sink']}: {d['error']}" for d in failed)
            self._give_up(row, State.FAILED, f"delivery failed: {errors}")
        else:
            self.transition(
                row, State.DONE, result=result, facts={"sinks": [d["sink"] for d in deliveries]}
            )
            remove_output(self.config.work_dir, row.upload_path)
            log.info(
                "recording_finished",
                outcome="done",
                conversation_id=row.conversation_id,
                seconds=round(time.time() - row.created_at, 3),
            )

    async def _deliver_one(
        self, row: RecordingRow, result: Result, delivery: dict[str, Any]
    ) -> None:
        name = delivery["sink"]
        sink = self.sinks.get(name)
        if sink is None:  # removed from the config since: nothing left to deliver there
            self.store.mark_delivery(row.id, name, state="done", detail='{"skipped": "removed"}')
            return
        attempts = delivery["attempts"] + 1
        try:
            receipt = await sink.deliver(result)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            retryable = isinstance(exc, Retryable) or not isinstance(exc, IngestdError)
            pipeline = self.config.pipeline
            # A sink's own budget, longer than a stage's: Slack or a database being down for
            # an hour is an outage to outlive, not a reason to give the recording up.
            if retryable and attempts < pipeline.delivery_max_attempts:
                delay = backoff_seconds(
                    attempts, pipeline.retry_initial_seconds, pipeline.retry_max_seconds
                )
                if isinstance(exc, Retryable) and exc.retry_after:
                    delay = max(delay, exc.retry_after)
                self.store.mark_delivery(
                    row.id,
                    name,
                    attempts=attempts,
                    error=redact(str(exc)),
                    next_attempt_at=time.time() + delay,
                )
                record_retry("sink")
                log.warning(
                    "sink_retry_scheduled",
                    sink=name,
                    attempt=attempts,
                    retry_in_s=round(delay, 2),
                    error=str(exc),
                )
            else:
                self.store.mark_delivery(
                    row.id, name, state="failed", attempts=attempts, error=redact(str(exc))
                )
                log.error("sink_failed", sink=name, attempt=attempts, error=str(exc))
            return
        self.store.mark_delivery(
            row.id,
            name,
            state="done",
            attempts=attempts,
            error=None,
            detail=json.dumps(receipt.detail, default=str),
        )
        log.info(
            "sink_delivered",
            sink=name,
            **{k: v for k, v in receipt.detail.items() if isinstance(v, str | int | float)},
        )


def _create(path: Path) -> IO[bytes]:
    """`path` opened for writing; its folder is made when missing (the first save), not by
    a mkdir call on every save."""
    try:
        return open(path, "wb")
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        return open(path, "wb")


def _write_json_atomically(path: Path, data: Any) -> None:
    """Write `data` under a temporary name, fsync, rename; a full disk raises DiskFull.

    The temporary name is the writer's own: two parts of one conversation fetched at once
    both save its insights, and a shared name let one rename the other's file away."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        with _create(temporary) as handle:
            handle.write(jsontext.dumps(data))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFull(
                f"disk full in the work directory {path.parent} while saving the insights; "
                f"waiting for free space there"
            ) from None
        raise
