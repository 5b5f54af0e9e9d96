"""Fault injection: a thread-safe plan of misbehaviours the sandbox performs on demand.

Tests arm faults (in-process through `Sandbox.faults`, or over HTTP through
``POST /_sandbox/faults``) to reproduce what a real network and a real service do to a
client: error statuses, 429 bursts, slowness, responses lost after the work was done,
connections cut before the upload, jobs that fail, tokens that expire early.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

KINDS = (
    "status",
    "drop_after_upload",
    "drop_before_upload",
    "latency",
    "fail_job",
    "expire_tokens",
)
STATUSES = (429, 500, 502, 503, 504)
GROUPS = ("any", "submit", "job", "conversation", "token")
"""Route filters: a route group, or one submission family (`SUBMIT_ROUTES`)."""
SUBMIT_ROUTES = ("audio", "video", "audio_url", "video_url")
DELETE_ROUTE = "conversation_delete"
"""Only ``DELETE /v1/conversations/{id}`` (the group ``conversation`` covers reads too)."""
_SUBMIT_ONLY = ("drop_after_upload", "drop_before_upload", "fail_job")


@dataclass
class Fault:
    """One armed fault; `times` counts the firings left."""

    id: int
    kind: str
    times: int = 1
    route: str = "any"
    status: int | None = None
    retry_after: float | None = None
    seconds: float | None = None

    def matches(self, group: str, route: str) -> bool:
        return self.route in ("any", group, route)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


class FaultPlan:
    """The armed faults, consumed first-armed-first by the request paths that check them.

    Args:
        on_expire_tokens: called when an ``expire_tokens`` fault is armed (it acts at once
            and is never stored).
    """

    def __init__(self, on_expire_tokens: Callable[[], None] | None = None) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._fired: list[dict[str, Any]] = []
        self._next_id = 1
        self._on_expire_tokens = on_expire_tokens

    def arm(self, spec: str | Mapping[str, Any], /, **fields: Any) -> Fault:
        """Arm one fault: ``arm("status", status=503, times=2)`` or ``arm({"kind": ...})``.

        Raises ValueError on an unknown kind, field or value.
        """
        data = {"kind": spec} if isinstance(spec, str) else dict(spec)
        data.update(fields)
        fault = self.validate(data)
        if fault.kind == "expire_tokens":
            if self._on_expire_tokens is not None:
                self._on_expire_tokens()
            self._record(fault, group="token", route="token")
            return fault
        with self._lock:
            fault.id = self._next_id
            self._next_id += 1
            self._faults.append(fault)
        return fault

    def take(self, kind: str, group: str, route: str) -> Fault | None:
        """Consume one firing of the first armed `kind` fault that matches the route."""
        with self._lock:
            for fault in self._faults:
                if fault.kind == kind and fault.matches(group, route):
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                    self._fired.append(self._fired_entry(fault, group, route))
                    return fault
        return None

    def clear(self) -> None:
        """Disarm everything (the record of fired faults stays)."""
        with self._lock:
            self._faults.clear()

    def reset(self) -> None:
        """Disarm everything and forget what fired."""
        with self._lock:
            self._faults.clear()
            self._fired.clear()

    def armed(self) -> list[dict[str, Any]]:
        with self._lock:
            return [f.to_dict() for f in self._faults]

    def fired(self) -> list[dict[str, Any]]:
        """Every firing so far, oldest first: ``{id, kind, group, route, at}``."""
        with self._lock:
            return [dict(entry) for entry in self._fired]

    def _record(self, fault: Fault, *, group: str, route: str) -> None:
        with self._lock:
            self._fired.append(self._fired_entry(fault, group, route))

    @staticmethod
    def _fired_entry(fault: Fault, group: str, route: str) -> dict[str, Any]:
        return {
            "id": fault.id,
            "kind": fault.kind,
            "group": group,
            "route": route,
            "at": time.time(),
        }

    @staticmethod
    def validate(spec: Mapping[str, Any]) -> Fault:
        """The Fault a spec describes (not armed); raises ValueError when it is invalid."""
        data = dict(spec)
        allowed = {"kind", "times", "route", "status", "retry_after", "seconds"}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise ValueError(f"unknown fault field(s): {', '.join(unknown)}")
        kind = data.get("kind")
        if kind not in KINDS:
            raise ValueError(f"fault kind must be one of {', '.join(KINDS)}, got {kind!r}")
        times = data.get("times", 1)
        if isinstance(times, bool) or not isinstance(times, int) or times < 1:
            raise ValueError(f"fault times must be an integer >= 1, got {times!r}")
        route = data.get("route", "any")
        routes = (*GROUPS, *SUBMIT_ROUTES, DELETE_ROUTE)
        if route not in routes:
            raise ValueError(f"fault route must be one of {', '.join(routes)}")
        if kind in _SUBMIT_ONLY and route not in ("any", "submit", *SUBMIT_ROUTES):
            raise ValueError(f"a {kind} fault only applies to submissions")
        fault = Fault(id=0, kind=kind, times=times, route=route)
        if kind == "status":
            status = data.get("status")
            if status not in STATUSES:
                raise ValueError(f"status fault needs status in {STATUSES}, got {status!r}")
            fault.status = status
            fault.retry_after = _seconds(data, "retry_after", required=False)
        elif kind == "latency":
            fault.seconds = _seconds(data, "seconds", required=True)
        for name in ("status", "retry_after", "seconds"):
            if data.get(name) is not None and getattr(fault, name) is None:
                raise ValueError(f"a {kind} fault takes no {name!r}")
        return fault


def _seconds(data: Mapping[str, Any], name: str, *, required: bool) -> float | None:
    value = data.get(name)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"fault {name} must be a number of seconds >= 0, got {value!r}")
    return float(value)
