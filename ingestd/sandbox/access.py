"""The gate every API request passes: armed faults first, then the access token.

Faults come first because, on the real service, a gateway's 5xx or a lost connection happens
before any authentication; a request that survives both proceeds to its route.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ingestd.sandbox.server import Handler

if TYPE_CHECKING:
    from ingestd.sandbox.app import Sandbox

BAD_TOKEN = {"message": "Token validation failed for provided token."}
NO_CONVERSATION = {"message": "The conversationId is either invalid or does not exist."}
NO_JOB = {"message": "The jobId is either invalid or does not exist."}
_PHRASES = {
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def limit_body(limit: int) -> dict[str, Any]:
    """The 429 body of symbl-api.md §4, with the account's limit as `X`."""
    return {
        "statusCode": 429,
        "message": f"This API has a limit of maximum of `{limit}` number of concurrent jobs per "
        "account. If you are looking to scale, and need more concurrent jobs than this limit, "
        "please contact us at support@symbl.ai",
    }


def media_type(req: Handler) -> str | None:
    """The Content-Type without parameters, lower-case; None when absent or empty."""
    value = (req.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    return value or None


def guard(
    sb: Sandbox, req: Handler, group: str, route: str, *, auth: bool = True
) -> tuple[str | None, str | None]:
    """Faults, then the token: (account, None) to go on, (None, outcome) once answered.

    `outcome` is "fault" (an injected status), "dropped" (connection closed) or "rejected"
    (401). Without `auth` the account is "".
    """
    fault = sb.faults.take("latency", group, route)
    if fault is not None:
        sb.stopping.wait(fault.seconds)
    fault = sb.faults.take("status", group, route)
    if fault is not None:
        headers = {}
        if fault.retry_after is not None:
            seconds = fault.retry_after
            headers["Retry-After"] = str(int(seconds)) if seconds.is_integer() else str(seconds)
        body = (
            limit_body(sb.options.concurrency_limit)
            if fault.status == 429
            else {"message": _PHRASES.get(fault.status or 500, "Error")}
        )
        req.send_json(fault.status or 500, body, headers=headers)
        return None, "fault"
    if group == "submit" and sb.faults.take("drop_before_upload", group, route) is not None:
        req.drop()
        return None, "dropped"
    if not auth:
        return "", None
    bearer = req.headers.get("Authorization") or ""
    token = bearer[7:].strip() if bearer[:7].lower() == "bearer " else None
    account = sb.tokens.account_for(token) or sb.tokens.account_for(req.headers.get("x-api-key"))
    if account is None:
        req.send_json(401, BAD_TOKEN)
        return None, "rejected"
    return account, None
