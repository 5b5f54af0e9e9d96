"""ingestd-echo: a third-party ingestd plugin (entry point ``echo`` in the ``ingestd`` group).

What it adds, each through ingestd's public API only:

- the ``echo`` backend (`backend`) and the ``ledger`` sink (`sink`), by the register hooks;
- two per-watch keys of its own, declared by ``ingestd_watch_keys`` and checked by
  ``ingestd_validate_watch``: ``echo_label`` (a prefix for conversation names, set by
  ``ingestd_set_parameters``) and ``echo_as_is`` (audio uploaded as it is: a
  ``wrapper=True`` transcode hook that replaces whatever plan the others made);
- a ``wrapper=True`` endpoint hook and the three event hooks, which log what they see.

The hooks act only on watches that set ``echo_label``, so installing the plugin changes
nothing elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import structlog

from ingestd import (
    AS_IS,
    Endpoint,
    Media,
    Params,
    Recording,
    Result,
    TranscodePlan,
    WatchConfig,
    hookimpl,
)
from ingestd_echo.backend import make_backend
from ingestd_echo.sink import make_ledger

log = structlog.get_logger()

WATCH_KEYS = ("echo_label", "echo_as_is")


def _label(recording: Recording) -> str | None:
    label = recording.watch.options.get("echo_label")
    return str(label) if label else None


@hookimpl
def ingestd_register_backends(register: Callable[..., None]) -> None:
    register("echo", make_backend)


@hookimpl
def ingestd_register_sinks(register: Callable[..., None]) -> None:
    register("ledger", make_ledger)


@hookimpl
def ingestd_watch_keys() -> list[str]:
    return list(WATCH_KEYS)


@hookimpl
def ingestd_validate_watch(watch: WatchConfig) -> list[str]:
    problems = []
    label = watch.options.get("echo_label")
    if label is not None and (not isinstance(label, str) or not label.strip()):
        problems.append(f"watch[{watch.name}].echo_label: expected a short text, got {label!r}")
    as_is = watch.options.get("echo_as_is", False)
    if not isinstance(as_is, bool):
        problems.append(f"watch[{watch.name}].echo_as_is: expected true or false, got {as_is!r}")
    return problems


@hookimpl
def ingestd_set_parameters(recording: Recording, params: Params) -> None:
    """Runs after the bundled plugins' parameters: the label goes before the name."""
    label = _label(recording)
    if label:
        params["name"] = f"{label}: {params.get('name') or recording.path.stem}"


@hookimpl(wrapper=True)
def ingestd_transcode_plan(
    recording: Recording, media: Media
) -> Generator[None, TranscodePlan | None, TranscodePlan | None]:
    """Around every other plugin's plan: with ``echo_as_is``, audio goes as it is."""
    plan = yield
    if recording.watch.options.get("echo_as_is") and media.kind == "audio":
        return AS_IS
    return plan


@hookimpl(wrapper=True)
def ingestd_choose_endpoint(
    recording: Recording, media: Media
) -> Generator[None, Endpoint | None, Endpoint | None]:
    """Around the endpoint choice: pass it through, and say what it was."""
    endpoint = yield
    if _label(recording) and endpoint is not None:
        log.info("echo_endpoint_chosen", relpath=recording.relpath, endpoint=str(endpoint.kind))
    return endpoint


@hookimpl
def ingestd_state_changed(recording: Recording, old: str, new: str, facts: dict[str, Any]) -> None:
    if _label(recording):
        log.info("echo_state_changed", relpath=recording.relpath, old=old, new=new)


@hookimpl
def ingestd_recording_done(recording: Recording, result: Result) -> None:
    if _label(recording):
        log.info(
            "echo_recording_done",
            relpath=recording.relpath,
            conversation_id=result.conversation_id,
        )


@hookimpl
def ingestd_recording_failed(recording: Recording, error: str) -> None:
    if _label(recording):
        log.info("echo_recording_failed", relpath=recording.relpath, error=error)
