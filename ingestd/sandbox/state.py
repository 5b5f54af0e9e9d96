"""The emulated account: conversations, jobs, the job clock, limits, and the request log.

One lock guards everything here. Job states are a pure function of time, so every read
first brings them up to date (`_advance`): a status read never lags the wall clock, and the
scheduler thread only exists to fire webhooks and append parts without a reader's help.
Jobs of one conversation run strictly one at a time in submission order (symbl-api.md §7);
a job waiting its turn stays ``scheduled`` and counts toward the concurrency limit.
"""

from __future__ import annotations

import dataclasses
import math
import random
import secrets
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from ingestd.sandbox.faults import FaultPlan
from ingestd.sandbox.insights import MESSAGE_GAP_SECONDS, Part, PartSource, build_part
from ingestd.sandbox.options import SandboxOptions
from ingestd.sandbox.views import Snapshot
from ingestd.sandbox.webhooks import WebhookSender

TERMINAL = ("completed", "failed")


class LimitReached(Exception):
    """The account already has `concurrency_limit` non-terminal jobs."""


class UnknownConversation(Exception):
    """No such conversationId (never created, or deleted)."""


@dataclass
class Job:
    id: str
    conversation_id: str
    account: str
    route: str
    source: PartSource
    webhook_url: str | None
    fail_reason: str | None
    created: float
    status: str = "scheduled"
    ready_at: float | None = None
    """When it may start (monotonic); set once every earlier job of its conversation ended."""
    finish_at: float | None = None
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Conversation:
    id: str
    name: str
    account: str
    created: float
    """UNIX time; the conversation's startTime."""
    metadata: dict[str, Any] = field(default_factory=dict)
    """The ``metadata`` object of the POST that created it, shown on every read."""
    job_ids: list[str] = field(default_factory=list)
    parts: list[Part] = field(default_factory=list)
    message_count: int = 0


class State:
    """Thread-safe store and job clock. `start()` runs the scheduler thread."""

    def __init__(self, options: SandboxOptions, faults: FaultPlan, webhooks: WebhookSender):
        self.options = options
        self._faults = faults
        self._webhooks = webhooks
        self._cond = threading.Condition(threading.RLock())
        self._mono0, self._wall0 = time.monotonic(), time.time()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._clear()

    def _clear(self) -> None:
        self._rng = random.Random(self.options.seed) if self.options.seed is not None else None
        self._jobs: dict[str, Job] = {}
        self._conversations: dict[str, Conversation] = {}
        self._pending: dict[str, deque[str]] = {}
        self._active: set[str] = set()
        self._submissions: dict[int, dict[str, Any]] = {}
        self._seq = getattr(self, "_seq", 0)
        self._counters: dict[str, int] = {
            "max_concurrent_jobs_seen": 0,
            "jobs_created": 0,
            "jobs_completed": 0,
            "jobs_failed": 0,
            "conversations_created": 0,
            "conversations_deleted": 0,
            "bytes_received": 0,
        }
        self._requests: dict[str, dict[str, int]] = {}

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="sandbox-scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def reset(self) -> None:
        with self._cond:
            self._clear()
            self._cond.notify_all()

    def set_options(self, options: SandboxOptions) -> None:
        with self._cond:
            self.options = options
            self._cond.notify_all()

    def _run(self) -> None:
        with self._cond:
            while not self._stopping:
                deadline = self._advance(time.monotonic())
                timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
                self._cond.wait(timeout)

    # -- ids -------------------------------------------------------------------------------

    def _new_conversation_id(self) -> str:
        while True:
            number = (self._rng or secrets.SystemRandom()).randrange(10**15, 10**16)
            if str(number) not in self._conversations:
                return str(number)

    def _new_job_id(self) -> str:
        if self._rng is None:
            return str(uuid.uuid4())
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    # -- submissions -----------------------------------------------------------------------

    def begin_submission(self, **fields: Any) -> int:
        """Log a submission request as it arrives; returns its seq."""
        with self._cond:
            self._seq += 1
            self._submissions[self._seq] = {
                "seq": self._seq,
                **fields,
                "created": False,
                "outcome": "receiving",
                "status_code": None,
                "received_at": time.time(),
            }
            return self._seq

    def update_submission(self, seq: int, **fields: Any) -> None:
        with self._cond:
            record = self._submissions.get(seq)
            if record is not None:
                record.update(fields)
            if fields.get("size"):
                self._counters["bytes_received"] += fields["size"]

    def count_request(self, route: str, status: int | str) -> None:
        with self._cond:
            by_status = self._requests.setdefault(route, {})
            by_status[str(status)] = by_status.get(str(status), 0) + 1

    def has_capacity(self, account: str) -> bool:
        with self._cond:
            self._advance(time.monotonic())
            return self._active_count(account) < self.options.concurrency_limit

    def conversation_exists(self, conversation_id: str) -> bool:
        with self._cond:
            return conversation_id in self._conversations

    def create_job(
        self,
        *,
        account: str,
        route: str,
        conversation_id: str | None,
        name: str | None,
        source: PartSource,
        webhook_url: str | None,
        fail_reason: str | None,
        metadata: dict[str, Any] | None = None,
    ) -> tuple[str, str]:
        """Create a job (and, for a POST, its conversation) atomically; (conversationId, jobId).

        `metadata` becomes a new conversation's ``metadata``; an append's is ignored (the
        conversation keeps what its first POST set). Raises LimitReached or
        UnknownConversation and then creates nothing.
        """
        with self._cond:
            now = time.monotonic()
            self._advance(now)
            if conversation_id is not None and conversation_id not in self._conversations:
                raise UnknownConversation(conversation_id)
            if self._active_count(account) >= self.options.concurrency_limit:
                raise LimitReached
            if fail_reason is None and self._faults.take("fail_job", "submit", route):
                fail_reason = "fail_job fault"
            if conversation_id is None:
                conversation_id = self._new_conversation_id()
                # Whole milliseconds, so the ISO startTime shown is the exact value filtered on.
                created = math.floor(self._wall(now) * 1000) / 1000
                self._conversations[conversation_id] = Conversation(
                    conversation_id, name or conversation_id, account, created, dict(metadata or {})
                )
                self._counters["conversations_created"] += 1
            job_id = self._new_job_id()
            job = Job(
                id=job_id,
                conversation_id=conversation_id,
                account=account,
                route=route,
                source=dataclasses.replace(source, job_id=job_id),
                webhook_url=webhook_url,
                fail_reason=fail_reason,
                created=now,
            )
            self._jobs[job.id] = job
            self._conversations[conversation_id].job_ids.append(job.id)
            queue = self._pending.setdefault(conversation_id, deque())
            queue.append(job.id)
            if len(queue) == 1:
                job.ready_at = now + self.options.schedule_seconds
            self._active.add(job.id)
            self._counters["jobs_created"] += 1
            self._counters["max_concurrent_jobs_seen"] = max(
                self._counters["max_concurrent_jobs_seen"], self._active_count(account)
            )
            self._transition(job, "scheduled", now)
            self._cond.notify_all()
            return conversation_id, job.id

    # -- the job clock ---------------------------------------------------------------------

    def _wall(self, mono: float) -> float:
        return self._wall0 + (mono - self._mono0)

    def _active_count(self, account: str) -> int:
        return sum(1 for job_id in self._active if self._jobs[job_id].account == account)

    def _transition(self, job: Job, status: str, at: float) -> None:
        job.status = status
        job.history.append({"status": status, "at": self._wall(at)})
        if job.webhook_url:
            self._webhooks.enqueue(job.webhook_url, job.id, status)

    def _advance(self, now: float) -> float | None:
        """Apply every transition due by `now`; the next deadline, or None when idle."""
        options = self.options
        deadline = None
        for conversation_id in list(self._pending):
            queue = self._pending[conversation_id]
            while queue:
                job = self._jobs[queue[0]]
                if job.status == "scheduled":
                    assert job.ready_at is not None
                    if job.ready_at > now:
                        deadline = _earliest(deadline, job.ready_at)
                        break
                    self._transition(job, "in_progress", job.ready_at)
                    job.finish_at = job.ready_at + options.job_seconds
                if job.finish_at is not None and job.finish_at > now:
                    deadline = _earliest(deadline, job.finish_at)
                    break
                self._finish(job)
                queue.popleft()
                if queue:
                    following = self._jobs[queue[0]]
                    following.ready_at = max(
                        following.created + options.schedule_seconds, job.finish_at or now
                    )
            if not queue:
                del self._pending[conversation_id]
        return deadline

    def _finish(self, job: Job) -> None:
        at = job.finish_at if job.finish_at is not None else time.monotonic()
        self._active.discard(job.id)
        if job.fail_reason is not None:
            self._counters["jobs_failed"] += 1
            self._transition(job, "failed", at)
            return
        conversation = self._conversations.get(job.conversation_id)
        if conversation is not None:
            previous = conversation.parts[-1] if conversation.parts else None
            part = build_part(
                job.source,
                conversation_id=conversation.id,
                index=len(conversation.parts),
                first_message=conversation.message_count,
                start=previous.end_offset + MESSAGE_GAP_SECONDS if previous else 0.0,
            )
            conversation.parts.append(part)
            conversation.message_count += len(part.messages)
        self._counters["jobs_completed"] += 1
        self._transition(job, "completed", at)

    # -- reads -----------------------------------------------------------------------------

    def job_status(self, job_id: str) -> str | None:
        with self._cond:
            self._advance(time.monotonic())
            job = self._jobs.get(job_id)
            return None if job is None else job.status

    def snapshot(self, conversation_id: str) -> Snapshot | None:
        with self._cond:
            self._advance(time.monotonic())
            conversation = self._conversations.get(conversation_id)
            return None if conversation is None else self._snapshot(conversation)

    def _snapshot(self, conversation: Conversation) -> Snapshot:
        return Snapshot(
            id=conversation.id,
            name=conversation.name,
            start=conversation.created,
            metadata=dict(conversation.metadata),
            parts=tuple(conversation.parts),
            complete=conversation.id not in self._pending,
        )

    def snapshots(self) -> list[Snapshot]:
        """Every conversation, oldest first."""
        with self._cond:
            self._advance(time.monotonic())
            return [self._snapshot(c) for c in self._conversations.values()]

    def delete_conversation(self, conversation_id: str) -> bool:
        """Forget a conversation; its unfinished jobs still run (and count) but append nothing."""
        with self._cond:
            if self._conversations.pop(conversation_id, None) is None:
                return False
            self._counters["conversations_deleted"] += 1
            return True

    # -- introspection (control API) -------------------------------------------------------

    def submissions(self) -> list[dict[str, Any]]:
        with self._cond:
            return [dict(record) for record in self._submissions.values()]

    def jobs(self) -> list[dict[str, Any]]:
        with self._cond:
            self._advance(time.monotonic())
            return [
                {
                    "id": job.id,
                    "conversationId": job.conversation_id,
                    "route": job.route,
                    "status": job.status,
                    "failReason": job.fail_reason,
                    "webhookUrl": job.webhook_url,
                    "sha256": job.source.sha256,
                    "size": job.source.size,
                    "url": job.source.url,
                    "history": [dict(h) for h in job.history],
                }
                for job in self._jobs.values()
            ]

    def conversation_jobs(self) -> dict[str, list[str]]:
        with self._cond:
            return {cid: list(c.job_ids) for cid, c in self._conversations.items()}

    def counters(self) -> dict[str, Any]:
        with self._cond:
            self._advance(time.monotonic())
            return {
                **self._counters,
                "concurrent_jobs": len(self._active),
                "requests": {route: dict(v) for route, v in self._requests.items()},
            }


def _earliest(current: float | None, candidate: float) -> float:
    return candidate if current is None else min(current, candidate)
