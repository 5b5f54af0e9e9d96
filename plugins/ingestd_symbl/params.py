"""Where each Symbl parameter goes and how it is spelt on the wire (symbl-api.md §3.1–§3.3).

File routes (POST/PUT ``/v1/process/{audio,video}``) carry every parameter in the query
string: booleans as ``true``/``false``, numbers as decimal text, objects and lists of objects
(``entities``, ``channelMetadata``, ``trackers``, ``features``, ``metadata``) as one JSON
string, and ``customVocabulary`` as a single key holding a JSON array (the form of the API's
own curl example and the Go SDK; the repeated-key form of the OpenAPI client is not used).

URL routes (``.../url``) carry ``url`` and the parameters JSON-typed in the body, except
`URL_QUERY_KEYS`. The sources disagree on those (§3.2); the choice here:

- ``enableSpeakerDiarization`` and ``diarizationSpeakerCount`` go in the **query**: the
  diarization tutorial and the OpenAPI-generated SDK (whose URL methods accept exactly these
  two as query parameters) send them there, and the SDK mirrors what the service declares;
- ``webhookUrl`` goes in the **body**, as the current reference documents it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from ingestd import EndpointKind, Permanent

URL_QUERY_KEYS = ("enableSpeakerDiarization", "diarizationSpeakerCount")
"""Parameters of URL routes sent in the query string rather than the JSON body."""

_ROUTES = {
    EndpointKind.AUDIO: "/v1/process/audio",
    EndpointKind.VIDEO: "/v1/process/video",
    EndpointKind.AUDIO_URL: "/v1/process/audio/url",
    EndpointKind.VIDEO_URL: "/v1/process/video/url",
}


def submit_path(kind: EndpointKind, conversation_id: str | None) -> str:
    """``/v1/process/audio`` for a new conversation, ``.../{conversationId}`` for an append."""
    base = _ROUTES[kind]
    return f"{base}/{quote(conversation_id, safe='')}" if conversation_id else base


def query_value(key: str, value: Any) -> str:
    """One parameter as query text (§3.3)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise Permanent(f"parameter {key}: {value!r} is not a number the API accepts")
        return repr(value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, list | tuple | dict):
        try:
            return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as exc:  # a set, a date, NaN from some plugin
            raise Permanent(f"parameter {key}: cannot be sent as JSON ({exc})") from None
    raise Permanent(f"parameter {key}: cannot send a {type(value).__name__} to the API")


def encode_query(params: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Query pairs for `params`, in their order; None values are left out."""
    return [(key, query_value(key, value)) for key, value in params.items() if value is not None]


def _json_ready(value: Any) -> Any:
    """Parameters as JSON values (a `Secret` travels as its plain text)."""
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, Mapping):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    return value


def url_request(url: str, params: Mapping[str, Any]) -> tuple[list[tuple[str, str]], bytes]:
    """The query pairs and JSON body of a URL-route submission."""
    query = {k: v for k, v in params.items() if k in URL_QUERY_KEYS}
    body = {"url": url}
    body.update(
        {k: _json_ready(v) for k, v in params.items() if k not in URL_QUERY_KEYS and k != "url"}
    )
    body = {k: v for k, v in body.items() if v is not None}
    try:
        payload = json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise Permanent(f"the parameters cannot be sent as JSON: {exc}") from None
    return encode_query(query), payload.encode("utf-8")
