"""The Symbl query parameters (symbl-api.md §3.1): each one's type, range and wire form, and
the checks that turn a bad value into one clear line per problem.

Values are kept as native YAML/JSON types (bool, int, float, str, list, dict); the Symbl
client spells them for the wire (`Parameter.wire`): in the query string of the file routes,
or JSON-typed in the body of the URL routes (``ingestd_symbl.params``).

A problem line names the key and says what was expected and what was found, after a
caller-given prefix: ``watch[sales].parameters.confidenceThreshold: expected a number from
0.5 to 1.0, got 0.2``.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

LANGUAGES = (
    "en-US", "en-GB", "en-AU", "en-IE", "en-IN", "en-ZA", "ru-RU", "fr-CA", "fr-FR", "de-DE",
    "it-IT", "nl-NL", "ja-JP", "es-US", "es-ES", "ar-SA", "hi-IN", "pt-BR", "pt-PT", "fa-IR",
)  # fmt: skip
"""The languages of the Async API (symbl-api.md §8); en-US is the API's default."""
DIARIZATION_LANGUAGES = ("en-", "es-")
"""Speaker diarization works for English and Spanish only (§8)."""
MODES = ("phone", "default")
PER_CHANNEL = "enableSeparateRecognitionPerChannel"
SPEAKER_KEYS = ("name", "email", "userId")

Problems = list[tuple[str, str]]
"""(sub-path after the parameter's name, message): ``("[0].channel", "expected ...")``."""


def show(value: Any) -> str:
    """A value as the user wrote it in YAML: true/false/null, quoted strings, short."""
    if value is True or value is False:
        return "true" if value else "false"
    if value is None:
        return "null"
    text = repr(str.__str__(value)) if isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _expected(what: str, value: Any) -> Problems:
    return [("", f"expected {what}, got {show(value)}")]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _json_problems(value: Any, path: str = "") -> Problems:
    """Anything JSON cannot carry (a YAML date, a NaN, a set), found anywhere inside."""
    if value is None or isinstance(value, bool | str | int):
        return []
    if isinstance(value, float):
        return [] if math.isfinite(value) else [(path, f"expected a finite number, got {value}")]
    if isinstance(value, Mapping):
        out: Problems = []
        for key, item in value.items():
            if not isinstance(key, str):
                out.append((path, f"expected text keys, got {show(key)}"))
            out.extend(_json_problems(item, f"{path}.{key}"))
        return out
    if isinstance(value, list | tuple):
        return [p for i, item in enumerate(value) for p in _json_problems(item, f"{path}[{i}]")]
    kind = type(value).__name__
    return [(path, f"expected a JSON value, got a {kind} ({value!s}); quote it in the YAML")]


# -- checks: value -> problems -------------------------------------------------------------


def _string(value: Any) -> Problems:
    return [] if _text(value) else _expected("a non-empty string", value)


def _url(value: Any) -> Problems:
    if isinstance(value, str):
        parts = urlsplit(value)
        if parts.scheme in ("http", "https") and parts.netloc:
            return []
    return _expected("an http(s) URL", value)


def _boolean(value: Any) -> Problems:
    return [] if isinstance(value, bool) else _expected("true or false", value)


def _threshold(value: Any) -> Problems:
    if _is_number(value) and 0.5 <= value <= 1.0:
        return []
    return _expected("a number from 0.5 to 1.0", value)


def _speaker_count(value: Any) -> Problems:
    return [] if _is_int(value) and value >= 1 else _expected("a whole number >= 1", value)


def _choice(choices: tuple[str, ...]) -> Callable[[Any], Problems]:
    def check(value: Any) -> Problems:
        if value in choices:
            return []
        by_case = {choice.lower(): choice for choice in choices}
        close = [by_case[str(value).lower()]] if str(value).lower() in by_case else []
        close = close or difflib.get_close_matches(str(value), choices, n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return [("", f"expected one of {', '.join(choices)}, got {show(value)}{hint}")]

    return check


def _string_list(value: Any) -> Problems:
    if not isinstance(value, list | tuple) or not value:
        return _expected("a non-empty list of strings", value)
    return [
        (f"[{i}]", f"expected a non-empty string, got {show(item)}")
        for i, item in enumerate(value)
        if not _text(item)
    ]


def _records(
    value: Any, what: str, fields: dict[str, tuple[Callable[[Any], Problems], bool]]
) -> Problems:
    """A non-empty list of objects; `fields` maps each allowed key to (check, required)."""
    if not isinstance(value, list | tuple) or not value:
        return _expected(f"a non-empty list of {what}", value)
    out: Problems = []
    for i, item in enumerate(value):
        where = f"[{i}]"
        if not isinstance(item, Mapping):
            out.append((where, f"expected an object with {', '.join(fields)}, got {show(item)}"))
            continue
        for key in item:
            if key not in fields:
                out.append((f"{where}.{key}", f"unknown key; expected {', '.join(fields)}"))
        for key, (check, required) in fields.items():
            if key in item:
                out.extend((f"{where}.{key}{sub}", msg) for sub, msg in check(item[key]))
            elif required:
                out.append((f"{where}.{key}", "missing; it is required"))
    return out


def _any_json(value: Any) -> Problems:
    return _json_problems(value)


def _entities(value: Any) -> Problems:
    fields = {"customType": (_string, True), "text": (_string, True), "value": (_any_json, False)}
    return _records(value, "entities {customType, text}", fields)


def _speaker(value: Any) -> Problems:
    if not isinstance(value, Mapping) or not any(k in value for k in ("name", "email")):
        return _expected("an object with a name and/or an email", value)
    out: Problems = []
    for key, item in value.items():
        if key not in SPEAKER_KEYS:
            out.append((f".{key}", f"unknown key; expected {', '.join(SPEAKER_KEYS)}"))
        elif not _text(item):
            out.append((f".{key}", f"expected a non-empty string, got {show(item)}"))
    return out


def _channel_number(value: Any) -> Problems:
    return [] if _is_int(value) and value >= 1 else _expected("a channel number >= 1", value)


def _channel_metadata(value: Any) -> Problems:
    fields = {"channel": (_channel_number, True), "speaker": (_speaker, True)}
    out = _records(value, "{channel, speaker} objects", fields)
    if not out:
        channels = [item["channel"] for item in value]
        for channel in sorted({c for c in channels if channels.count(c) > 1}):
            out.append(("", f"channel {channel} is mapped more than once"))
    return out


def _trackers(value: Any) -> Problems:
    fields = {"name": (_string, True), "vocabulary": (_string_list, True)}
    return _records(value, "trackers {name, vocabulary}", fields)


def _object(value: Any) -> Problems:
    if not isinstance(value, Mapping):
        return _expected("an object (a mapping)", value)
    return _json_problems(value)


# -- the schema ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Parameter:
    """One documented parameter: what it takes and how it travels."""

    name: str
    kind: str
    check: Callable[[Any], Problems]
    wire: str


_BOOL_WIRE = "query: true/false; URL body: JSON boolean"
_JSON_WIRE = "query: one key holding JSON text; URL body: JSON"

SCHEMA: dict[str, Parameter] = {
    p.name: p
    for p in (
        Parameter("name", "string", _string, "query: text; URL body: string"),
        Parameter("webhookUrl", "http(s) URL", _url, "query (file routes); URL body"),
        Parameter(
            "customVocabulary",
            "list of strings",
            _string_list,
            'query: one key holding a JSON array (["a","b"]), never repeated keys',
        ),
        Parameter(
            "confidenceThreshold", "number 0.5–1.0", _threshold, "query: decimal text; body: number"
        ),
        Parameter("detectPhrases", "boolean", _boolean, _BOOL_WIRE),
        Parameter("entities", "list of {customType, text, value?}", _entities, _JSON_WIRE),
        Parameter("detectEntities", "boolean", _boolean, _BOOL_WIRE),
        Parameter("languageCode", "one of §8's languages", _choice(LANGUAGES), "query; URL body"),
        Parameter("mode", "phone | default", _choice(MODES), "query; URL body"),
        Parameter(PER_CHANNEL, "boolean", _boolean, _BOOL_WIRE),
        Parameter(
            "channelMetadata",
            "list of {channel, speaker: {name, email}}",
            _channel_metadata,
            _JSON_WIRE,
        ),
        Parameter("trackers", "list of {name, vocabulary}", _trackers, _JSON_WIRE),
        Parameter("enableAllTrackers", "boolean", _boolean, _BOOL_WIRE),
        Parameter("enableSummary", "boolean", _boolean, _BOOL_WIRE),
        Parameter("enableSpeakerDiarization", "boolean", _boolean, "query, on every route"),
        Parameter(
            "diarizationSpeakerCount", "whole number >= 1", _speaker_count, "query, on every route"
        ),
        Parameter("features", "object", _object, _JSON_WIRE),
        Parameter("metadata", "object", _object, _JSON_WIRE),
    )
}
"""Every query parameter of symbl-api.md §3.1 (``features``/``metadata`` are the Python
SDK's Call Score objects), in the contract's order."""


def value_problems(params: Mapping[str, Any]) -> list[str]:
    """Unknown keys and bad values, as ``key...: message`` lines (no prefix)."""
    lines = []
    for key, value in params.items():
        parameter = SCHEMA.get(key)
        if parameter is None:
            lines.append(f"{key}: {_unknown(key)}")
            continue
        lines.extend(f"{key}{sub}: {message}" for sub, message in parameter.check(value))
    return lines


def _unknown(key: Any) -> str:
    if key == "url":
        return "not a parameter: URL routes get it from endpoint.public_base_url"
    close = difflib.get_close_matches(str(key), SCHEMA, n=1, cutoff=0.6)
    if close:
        return f"unknown parameter; did you mean {close[0]!r}?"
    return "unknown parameter; see the parameters of symbl-api.md §3.1"


def combination_problems(params: Mapping[str, Any]) -> list[str]:
    """Parameters that are fine alone but contradict each other (§3.1, §8)."""
    lines = []
    per_channel = params.get(PER_CHANNEL) is True
    diarization = params.get("enableSpeakerDiarization") is True
    if "channelMetadata" in params and not per_channel:
        lines.append(f"channelMetadata: only used with {PER_CHANNEL}: true")
    if diarization and per_channel:
        lines.append(
            f"enableSpeakerDiarization: both it and {PER_CHANNEL} are true, and the API then "
            "ignores the channels; set one of them to false"
        )
    if "diarizationSpeakerCount" in params and not diarization:
        lines.append("diarizationSpeakerCount: only used with enableSpeakerDiarization: true")
    language = params.get("languageCode", "en-US")
    if diarization and isinstance(language, str) and not language.startswith(DIARIZATION_LANGUAGES):
        lines.append(
            f"enableSpeakerDiarization: speaker diarization works for English and Spanish "
            f"only, but languageCode is {language!r}"
        )
    return lines


def implied(params: Mapping[str, Any]) -> dict[str, Any]:
    """`params` plus what they imply: channelMetadata switches per-channel recognition on
    unless it was set explicitly."""
    out = dict(params)
    if "channelMetadata" in out and PER_CHANNEL not in out:
        out[PER_CHANNEL] = True
    return out


def problems(params: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Every problem with `params` (after what they imply), one line each, after `prefix`."""
    lines = value_problems(params)
    if not lines:  # a contradiction between values that are themselves wrong is noise
        lines = combination_problems(implied(params))
    return [prefix + line for line in lines]
