"""Webhook delivery (symbl-api.md §5): ``{jobId, status}`` POSTed on every job transition.

Deliveries run on one background thread so no request or scheduler step ever waits on a
receiver. Updates of one job go out in order (the next waits until the previous one was
answered 200 or given up on); a receiver that does not answer 200 gets the same update
again, at most `webhook_retries` more times, `webhook_retry_seconds` apart.
"""

from __future__ import annotations

import heapq
import http.client
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ingestd.sandbox.options import SandboxOptions


@dataclass
class Delivery:
    url: str
    job_id: str
    status: str
    attempts: int = 0


class WebhookSender:
    """Queues and sends webhook updates; `start()` before use, `stop()` drops what is left."""

    def __init__(self, options: Callable[[], SandboxOptions]) -> None:
        self._options = options
        self._cond = threading.Condition()
        self._queues: dict[str, deque[Delivery]] = {}
        self._heap: list[tuple[float, int, str]] = []
        self._seq = 0
        self._log: list[dict[str, Any]] = []
        self._counts = {"webhook_attempts": 0, "webhook_delivered": 0, "webhook_given_up": 0}
        self._stopping = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="sandbox-webhooks", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def enqueue(self, url: str, job_id: str, status: str) -> None:
        """Queue one update; it is sent after the job's earlier updates."""
        with self._cond:
            queue = self._queues.setdefault(job_id, deque())
            queue.append(Delivery(url, job_id, status))
            if len(queue) == 1:
                self._push(time.monotonic(), job_id)

    def attempts(self) -> list[dict[str, Any]]:
        """Every attempt so far: ``{url, jobId, status, attempt, result, at}``."""
        with self._cond:
            return [dict(entry) for entry in self._log]

    def counts(self) -> dict[str, int]:
        with self._cond:
            return dict(self._counts)

    def reset(self) -> None:
        with self._cond:
            self._queues.clear()
            self._heap.clear()
            self._log.clear()
            self._counts = dict.fromkeys(self._counts, 0)

    def _push(self, due: float, job_id: str) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (due, self._seq, job_id))
        self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                delivery = self._next_due()
                if delivery is None:
                    return
            result = _post(delivery, self._options().webhook_timeout_seconds)
            with self._cond:
                self._finish(delivery, result)

    def _next_due(self) -> Delivery | None:
        """Wait (lock held) for the next due delivery; None once stopping."""
        while not self._stopping:
            if self._heap:
                due, _, job_id = self._heap[0]
                wait = due - time.monotonic()
                if wait <= 0:
                    heapq.heappop(self._heap)
                    queue = self._queues.get(job_id)
                    if queue:
                        queue[0].attempts += 1
                        return queue[0]
                    continue
                self._cond.wait(wait)
            else:
                self._cond.wait()
        return None

    def _finish(self, delivery: Delivery, result: int | str) -> None:
        options = self._options()
        self._counts["webhook_attempts"] += 1
        self._log.append(
            {
                "url": delivery.url,
                "jobId": delivery.job_id,
                "status": delivery.status,
                "attempt": delivery.attempts,
                "result": result,
                "at": time.time(),
            }
        )
        queue = self._queues.get(delivery.job_id)
        if not queue or queue[0] is not delivery:
            return  # reset while sending
        if result != 200 and delivery.attempts <= options.webhook_retries:
            self._push(time.monotonic() + options.webhook_retry_seconds, delivery.job_id)
            return
        self._counts["webhook_delivered" if result == 200 else "webhook_given_up"] += 1
        queue.popleft()
        if queue:
            self._push(time.monotonic(), delivery.job_id)
        else:
            del self._queues[delivery.job_id]


def _post(delivery: Delivery, timeout: float) -> int | str:
    """POST the update; the HTTP status, or the error's text when there was none."""
    parts = urlsplit(delivery.url)
    connection_type = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    body = json.dumps({"jobId": delivery.job_id, "status": delivery.status}).encode()
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    connection = connection_type(parts.hostname or "", parts.port, timeout=timeout)
    try:
        connection.request(
            "POST",
            path,
            body=body,
            headers={"Content-Type": "application/json", "User-Agent": "symbl-sandbox"},
        )
        response = connection.getresponse()
        response.read()
        return response.status
    except (OSError, http.client.HTTPException) as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        connection.close()
