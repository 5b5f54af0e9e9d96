"""Token generation and the eight Async submission routes (symbl-api.md §2–§4).

A submission is logged the moment it arrives and updated to its outcome (created, rejected,
fault, dropped, aborted), so tests can count exactly-once. File bodies are streamed, never
held; the job is created atomically with the concurrency check, after the upload was read.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from ingestd.sandbox import uploads
from ingestd.sandbox.access import NO_CONVERSATION, guard, limit_body, media_type
from ingestd.sandbox.insights import PartSource
from ingestd.sandbox.params import ParamError, parse_file_query, parse_url_request
from ingestd.sandbox.server import BodyError, Handler
from ingestd.sandbox.state import LimitReached, UnknownConversation

if TYPE_CHECKING:
    from ingestd.sandbox.app import Sandbox


def token_generate(sb: Sandbox, req: Handler, match: re.Match[str]) -> None:
    _, handled = guard(sb, req, "token", "token", auth=False)
    if handled:
        return
    try:
        body = req.read_json(64 * 1024)
    except BodyError as exc:
        req.send_json(exc.status, {"message": exc.message})
        return
    if not isinstance(body, dict):
        req.send_json(400, {"message": '"value" must be of type object'})
        return
    if body.get("type") != "application":
        req.send_json(400, {"message": '"type" must be [application]'})
        return
    for key in ("appId", "appSecret"):
        if not isinstance(body.get(key), str) or not body[key]:
            req.send_json(400, {"message": f'"{key}" is required'})
            return
    options = sb.options
    if body["appId"] != options.app_id or body["appSecret"] != options.app_secret:
        req.send_json(401, {"message": "Invalid appId or appSecret."})
        return
    token, expires_in = sb.tokens.generate(options.app_id, options.token_lifetime_seconds)
    req.send_json(200, {"accessToken": token, "expiresIn": expires_in})


class _Submission:
    """One submission's log entry, updated as the request goes."""

    def __init__(self, sb: Sandbox, req: Handler, route: str, conversation_id: str | None):
        self.sb, self.req, self.route = sb, req, route
        self.seq = sb.state.begin_submission(
            method=req.command,
            route=route,
            path=req.route_path,
            query_string=req.query,
            params=None,
            content_type=req.headers.get("Content-Type"),
            content_length=req.length,
            size=None,
            sha256=None,
            url=None,
            conversationId=conversation_id,
            jobId=None,
            error=None,
        )

    def note(self, **fields: Any) -> None:
        self.sb.state.update_submission(self.seq, **fields)

    def answer(self, status: int, body: dict[str, Any], outcome: str, **kw: Any) -> None:
        """Log, then send; an answer the client never received is logged as dropped."""
        error = body.get("message") if status >= 400 else None
        self.note(status_code=status, outcome=outcome, error=error)
        try:
            self.req.send_json(status, body, **kw)
        except OSError:
            self.note(outcome="dropped")
            raise

    def create(self, conversation_id: str | None, source: PartSource, fail: str | None) -> None:
        """Create the job atomically, then answer 201 (or lose the answer to a fault)."""
        params = source.params
        try:
            cid, job_id = self.sb.state.create_job(
                account=self.account,
                route=self.route,
                conversation_id=conversation_id,
                name=params.get("name"),
                source=source,
                webhook_url=params.get("webhookUrl"),
                fail_reason=fail,
                metadata=params.get("metadata"),
            )
        except LimitReached:
            self.answer(429, limit_body(self.sb.options.concurrency_limit), "rejected")
            return
        except UnknownConversation:
            self.answer(404, NO_CONVERSATION, "rejected")
            return
        self.note(conversationId=cid, jobId=job_id, created=True)
        if self.sb.faults.take("drop_after_upload", "submit", self.route) is not None:
            self.note(outcome="dropped")  # logged first: the client may look right away
            self.req.drop()
            return
        self.answer(201, {"conversationId": cid, "jobId": job_id}, "created")

    def guard(self) -> bool:
        account, outcome = guard(self.sb, self.req, "submit", self.route)
        if account is None:
            self.note(status_code=self.req.status_sent, outcome=outcome)
            return False
        self.account = account
        return True


def submit_file(sb: Sandbox, req: Handler, match: re.Match[str]) -> None:
    route = match["kind"]
    conversation_id = match.groupdict().get("cid")
    sub = _Submission(sb, req, route, conversation_id)
    if not sub.guard():
        return
    content_type = media_type(req)
    try:
        params = parse_file_query(req.query)
    except ParamError as exc:
        sub.answer(400, {"message": str(exc)}, "rejected")
        return
    sub.note(params=params)
    if route == "video" and content_type != "video/mp4":
        sub.answer(400, {"message": '"Content-Type" must be video/mp4'}, "rejected")
        return
    if route == "audio" and content_type and content_type not in uploads.AUDIO_TYPES:
        allowed = ", ".join(uploads.AUDIO_TYPES)
        sub.answer(400, {"message": f'"Content-Type" must be one of [{allowed}]'}, "rejected")
        return
    if req.chunked or (req.length is None and not req.bad_length):
        status = sb.options.missing_content_length_status
        sub.answer(status, {"message": "Content-Length header is required"}, "rejected", close=True)
        return
    if req.bad_length or req.length is None:
        sub.answer(400, {"message": "invalid Content-Length"}, "rejected", close=True)
        return
    if req.length == 0:
        sub.answer(400, {"message": "Request body is empty"}, "rejected")
        return
    cap = sb.options.max_body_bytes
    if cap is not None and req.length > cap:
        body = {"message": f"Request body exceeds the {cap} byte limit"}
        sub.answer(413, body, "rejected", close=True)
        return
    if conversation_id is not None and not sb.state.conversation_exists(conversation_id):
        sub.answer(404, NO_CONVERSATION, "rejected")
        return
    if not sb.state.has_capacity(sub.account):
        sub.answer(429, limit_body(sb.options.concurrency_limit), "rejected")
        return
    try:
        digest = req.read_upload()
    except uploads.Truncated as exc:
        req.drop("aborted")
        sub.note(outcome="aborted", error=str(exc))
        return
    sub.note(size=digest.size, sha256=digest.sha256)
    source = PartSource(
        "", sha256=digest.sha256, size=digest.size, params=params, seconds=digest.seconds
    )
    sub.create(conversation_id, source, uploads.media_problem(route, content_type, digest.head))


def submit_url(sb: Sandbox, req: Handler, match: re.Match[str]) -> None:
    route = f"{match['kind']}_url"
    conversation_id = match.groupdict().get("cid")
    sub = _Submission(sb, req, route, conversation_id)
    if not sub.guard():
        return
    if media_type(req) != "application/json":
        sub.answer(400, {"message": '"Content-Type" must be application/json'}, "rejected")
        return
    try:
        body = req.read_json()
        params = parse_url_request(req.query, body)
    except BodyError as exc:
        sub.answer(exc.status, {"message": exc.message}, "rejected")
        return
    except ParamError as exc:
        sub.answer(400, {"message": str(exc)}, "rejected")
        return
    url = params.pop("url")
    sub.note(params=params, url=url)
    if conversation_id is not None and not sb.state.conversation_exists(conversation_id):
        sub.answer(404, NO_CONVERSATION, "rejected")
        return
    sub.create(conversation_id, PartSource("", url=url, params=params), None)
