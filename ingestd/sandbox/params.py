"""Validation of Async API parameters (symbl-api.md §3.1–§3.3), Joi-style messages included.

File routes take every parameter in the query string (booleans as ``true``/``false``,
objects as JSON text, ``customVocabulary`` as a JSON array *or* repeated keys). URL routes
take them JSON-typed in the body, except the three keys the sources disagree on, which are
accepted in the query as well. Anything unknown is a 400, as Joi answers the real service.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

LANGUAGES = (
    "en-US", "en-GB", "en-AU", "en-IE", "en-IN", "en-ZA", "ru-RU", "fr-CA", "fr-FR", "de-DE",
    "it-IT", "nl-NL", "ja-JP", "es-US", "es-ES", "ar-SA", "hi-IN", "pt-BR", "pt-PT", "fa-IR",
)  # fmt: skip
MODES = ("phone", "default")


class ParamError(ValueError):
    """A parameter failed validation; the message is the 400 body's ``message``."""


Validator = Callable[[str, Any, bool], Any]
"""``validator(name, value, from_query) -> parsed value``; raises ParamError."""


def _string(name: str, value: Any, from_query: bool) -> str:
    if not isinstance(value, str):
        raise ParamError(f'"{name}" must be a string')
    if not value:
        raise ParamError(f'"{name}" is not allowed to be empty')
    return value


def _uri(name: str, value: Any, from_query: bool) -> str:
    text = _string(name, value, from_query)
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ParamError(f'"{name}" must be a valid uri')
    return text


def _boolean(name: str, value: Any, from_query: bool) -> bool:
    if isinstance(value, bool) and not from_query:
        return value
    if value in ("true", "false"):
        return value == "true"
    raise ParamError(f'"{name}" must be a boolean')


def _number(name: str, value: Any, from_query: bool) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and not from_query:
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip()) if value.strip() else math.nan
        except ValueError:
            number = math.nan
    else:
        number = math.nan
    if not math.isfinite(number):
        raise ParamError(f'"{name}" must be a number')
    return number


def _threshold(name: str, value: Any, from_query: bool) -> float:
    number = _number(name, value, from_query)
    if number < 0.5:
        raise ParamError(f'"{name}" must be greater than or equal to 0.5')
    if number > 1.0:
        raise ParamError(f'"{name}" must be less than or equal to 1')
    return number


def _count(name: str, value: Any, from_query: bool) -> int:
    number = _number(name, value, from_query)
    if not number.is_integer():
        raise ParamError(f'"{name}" must be an integer')
    if number < 1:
        raise ParamError(f'"{name}" must be greater than or equal to 1')
    return int(number)


def _one_of(choices: tuple[str, ...]) -> Validator:
    def check(name: str, value: Any, from_query: bool) -> str:
        if value not in choices:
            raise ParamError(f'"{name}" must be one of [{", ".join(choices)}]')
        return value

    return check


def _json_value(name: str, value: Any, from_query: bool) -> Any:
    """Objects arrive as JSON text in a query string and JSON-typed in a body."""
    if not from_query:
        return value
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        raise ParamError(f'"{name}" must be valid JSON') from None


def _array(name: str, value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise ParamError(f'"{name}" must be an array')
    return value


def _field(obj: dict[str, Any], where: str, key: str, kind: type, required: bool = True) -> Any:
    if key not in obj:
        if required:
            raise ParamError(f'"{where}.{key}" is required')
        return None
    value = obj[key]
    if kind is object:
        return value
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        article = {str: "a string", int: "an integer", dict: "an object", list: "an array"}
        raise ParamError(f'"{where}.{key}" must be {article.get(kind, kind.__name__)}')
    return value


def _objects(name: str, value: Any, from_query: bool, keys: dict[str, tuple[type, bool]]) -> list:
    items = _array(name, _json_value(name, value, from_query))
    for i, item in enumerate(items):
        where = f"{name}[{i}]"
        if not isinstance(item, dict):
            raise ParamError(f'"{where}" must be an object')
        for key in item:
            if key not in keys:
                raise ParamError(f'"{where}.{key}" is not allowed')
        for key, (kind, required) in keys.items():
            _field(item, where, key, kind, required)
    return items


def _entities(name: str, value: Any, from_query: bool) -> list[dict[str, Any]]:
    keys = {"customType": (str, True), "text": (str, True), "value": (object, False)}
    return _objects(name, value, from_query, keys)


def _channels(name: str, value: Any, from_query: bool) -> list[dict[str, Any]]:
    items = _objects(name, value, from_query, {"channel": (int, True), "speaker": (dict, True)})
    for i, item in enumerate(items):
        if item["channel"] < 1:
            raise ParamError(f'"{name}[{i}].channel" must be greater than or equal to 1')
        for key in item["speaker"]:
            if key not in ("name", "email", "userId"):
                raise ParamError(f'"{name}[{i}].speaker.{key}" is not allowed')
            _field(item["speaker"], f"{name}[{i}].speaker", key, str)
    return items


def _trackers(name: str, value: Any, from_query: bool) -> list[dict[str, Any]]:
    items = _objects(name, value, from_query, {"name": (str, True), "vocabulary": (list, True)})
    for i, item in enumerate(items):
        if not item["vocabulary"] or not all(isinstance(v, str) and v for v in item["vocabulary"]):
            raise ParamError(f'"{name}[{i}].vocabulary" must be a non-empty array of strings')
    return items


def _vocabulary(name: str, value: Any, from_query: bool) -> list[str]:
    if from_query and isinstance(value, str):
        value = _json_value(name, value, True) if value.lstrip().startswith("[") else [value]
    items = _array(name, value)
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise ParamError(f'"{name}[{i}]" must be a string')
    return items


def _object(name: str, value: Any, from_query: bool) -> dict[str, Any]:
    parsed = _json_value(name, value, from_query)
    if not isinstance(parsed, dict):
        raise ParamError(f'"{name}" must be an object')
    return parsed


FILE_PARAMS: dict[str, Validator] = {
    "name": _string,
    "webhookUrl": _uri,
    "customVocabulary": _vocabulary,
    "confidenceThreshold": _threshold,
    "detectPhrases": _boolean,
    "entities": _entities,
    "detectEntities": _boolean,
    "languageCode": _one_of(LANGUAGES),
    "mode": _one_of(MODES),
    "enableSeparateRecognitionPerChannel": _boolean,
    "channelMetadata": _channels,
    "trackers": _trackers,
    "enableAllTrackers": _boolean,
    "enableSummary": _boolean,
    "enableSpeakerDiarization": _boolean,
    "diarizationSpeakerCount": _count,
    "features": _object,
    "metadata": _object,
}
"""§3.1, plus the [PY]-only ``features``/``metadata`` objects."""
URL_QUERY_PARAMS = ("enableSpeakerDiarization", "diarizationSpeakerCount", "webhookUrl")
"""Keys the URL routes also take from the query string (sources disagree on placement)."""
URL_BODY_PARAMS: dict[str, Validator] = {
    **FILE_PARAMS,
    "url": _uri,
    "timezoneOffset": _number,
}


def parse_file_query(query: str) -> dict[str, Any]:
    """The parameters of a file route, parsed; raises ParamError."""
    return _parse_query(query, FILE_PARAMS)


def parse_url_request(query: str, body: Any) -> dict[str, Any]:
    """Body and query of a URL route merged (the body wins); raises ParamError."""
    allowed = {key: FILE_PARAMS[key] for key in URL_QUERY_PARAMS}
    params = _parse_query(query, allowed)
    if not isinstance(body, dict):
        raise ParamError('"value" must be of type object')
    for key, value in body.items():
        validator = URL_BODY_PARAMS.get(key)
        if validator is None:
            raise ParamError(f'"{key}" is not allowed')
        params[key] = validator(key, value, False)
    if "url" not in body:
        raise ParamError('"url" is required')
    return params


def _parse_query(query: str, allowed: dict[str, Validator]) -> dict[str, Any]:
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=False, errors="strict")
    except UnicodeDecodeError:
        raise ParamError("query string is not valid UTF-8") from None
    values: dict[str, list[str]] = {}
    for key, value in pairs:
        values.setdefault(key, []).append(value)
    params: dict[str, Any] = {}
    for key, given in values.items():
        validator = allowed.get(key)
        if validator is None:
            raise ParamError(f'"{key}" is not allowed')
        if key == "customVocabulary" and len(given) > 1:
            params[key] = _vocabulary(key, given, False)
        elif len(given) > 1:
            raise ParamError(f'"{key}" must be a single value')
        else:
            params[key] = validator(key, given[0], True)
    return params
