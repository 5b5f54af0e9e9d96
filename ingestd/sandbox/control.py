"""The control API under ``/_sandbox/``: introspection and fault injection over HTTP.

For tests whose sandbox runs inside a daemon subprocess, where `Sandbox.submissions()` and
`Sandbox.faults` are out of reach. No authentication: it is only served to loopback
clients, and only when `SandboxOptions.control_api` is set.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from ingestd.sandbox.server import BodyError, Handler

if TYPE_CHECKING:
    from ingestd.sandbox.app import Sandbox


def _read(req: Handler) -> Any | None:
    """The JSON body, or None after answering 400 (an empty body reads as {})."""
    try:
        raw = req.read_body(1 << 20)
        return json.loads(raw) if raw.strip() else {}
    except BodyError as exc:
        req.send_json(exc.status, {"message": exc.message})
    except ValueError:
        req.send_json(400, {"message": "body is not valid JSON"})
    return None


def submissions(sb: Sandbox, req: Handler, match: re.Match[str]) -> None:
    req.send_json(200, {"submissions": sb.submissions()})


def jobs(sb: Sandbox, req: Handler, match: re.Match[str]) -> None:
    req.send_json(200, {"jobs": sb.jobs()})


def conversations(sb: Sandbox, req: Handler, match: re.Match[str]) -> None:
    req.send_json(200, {"conversations": sb.conversations()})


def stats(sb: Sandbox, req: Handler, match: re.Match[str]) -> None:
    req.send_json(200, sb.stats())


def webhooks(sb: Sandbox, req: Handler, match: re.Match[str]) -> None:
    req.send_json(200, {"attempts": sb.webhooks.attempts()})


def faults(sb: Sandbox, req: Handler, match: re.Match[str]) -> None:
    """GET lists armed and fired faults; POST arms one, a list, or ``{"faults": [...]}``;
    DELETE disarms all."""
    if req.command == "DELETE":
        sb.faults.clear()
    elif req.command == "POST":
        body = _read(req)
        if body is None:
            return
        specs = body.get("faults", body) if isinstance(body, dict) else body
        specs = specs if isinstance(specs, list) else [specs]
        try:
            for spec in specs:
                if not isinstance(spec, dict):
                    raise ValueError("each fault must be a JSON object")
                sb.faults.validate(spec)
            armed = [sb.faults.arm(spec).to_dict() for spec in specs]
        except ValueError as exc:
            req.send_json(400, {"message": str(exc)})
            return
        req.send_json(200, {"armed": armed, "faults": sb.faults.armed()})
        return
    req.send_json(200, {"faults": sb.faults.armed(), "fired": sb.faults.fired()})


def options(sb: Sandbox, req: Handler, match: re.Match[str]) -> None:
    """GET the options; POST a partial JSON object to change them while running."""
    if req.command == "POST":
        body = _read(req)
        if body is None:
            return
        if not isinstance(body, dict):
            req.send_json(400, {"message": "expected a JSON object of option values"})
            return
        try:
            sb.set_options(body)
        except (TypeError, ValueError) as exc:
            req.send_json(400, {"message": str(exc)})
            return
    req.send_json(200, sb.options.to_dict())


def reset(sb: Sandbox, req: Handler, match: re.Match[str]) -> None:
    """Forget conversations, jobs, submissions, statistics, webhooks, faults and tokens."""
    if _read(req) is None:
        return
    sb.reset()
    req.send_json(200, {"message": "reset"})
