"""Calling hooks through pluggy while still knowing which plugin answered or raised.

Every hook is called through pluggy's own caller (``pm.hook.<name>(**kwargs)``), so
``wrapper=True`` wrappers, old-style ``hookwrapper=True``, tryfirst/trylast and
``add_hookcall_monitoring`` behave as pluggy documents. What pluggy does not say is *who*
produced the result; errors and ``ingestd explain`` need it. So `AttributingManager` wraps
each implementation's function when its plugin is registered, whoever registers it:

- an implementation that returns a value notes ``(plugin, value)`` for the current call;
  a new-style wrapper notes what it returned; `answered_by` picks the first note that *is*
  the final result (so a wrapper passing a result through leaves the credit where it was);
- an exception that is not an `IngestdError` becomes a `PluginError` naming plugin and hook
  (the recording fails, the daemon carries on);
- in an event hook (`EVENT_HOOKS`) an exception is logged with the plugin's name and
  dropped, and the other implementations still run: a notification never fails a recording.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable, Generator
from typing import Any

import pluggy

from ingestd.errors import IngestdError, PluginError
from ingestd.logging import get_logger

log = get_logger()

EVENT_HOOKS = frozenset(
    {"ingestd_state_changed", "ingestd_recording_done", "ingestd_recording_failed"}
)
"""Notifications: an implementation that raises is logged and never fails the recording."""

Note = tuple[str, Any, str]  # (plugin, value, kind: "impl" | "wrapper" | "old-style")
Notes = list[Note]
_notes: contextvars.ContextVar[Notes | None] = contextvars.ContextVar("ingestd_hook_notes")


def _note(plugin: str, value: Any, kind: str) -> None:
    notes = _notes.get(None)
    if notes is not None:
        notes.append((plugin, value, kind))


def _failed(plugin: str, hook: str, exc: Exception) -> None:
    """Raise what the caller sees for `exc`, or log it and return for an event hook."""
    if hook in EVENT_HOOKS:
        log.error("event_hook_failed", hook=hook, plugin=plugin, error=repr(exc))
        return
    if isinstance(exc, IngestdError):
        raise exc
    raise PluginError(f"plugin {plugin!r} raised in {hook}: {type(exc).__name__}: {exc}") from exc


def _attributed(impl: Any, hook: str) -> Callable[..., Any]:
    """`impl.function`, noting its answer and naming its plugin when it raises."""
    function, plugin = impl.function, impl.plugin_name

    if impl.hookwrapper or impl.wrapper:
        kind = "old-style" if impl.hookwrapper else "wrapper"

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
            if impl.hookwrapper:  # it may force_result: noted before, as we cannot see it
                _note(plugin, None, kind)
            try:
                result = yield from function(*args, **kwargs)
            except Exception as exc:
                _failed(plugin, hook, exc)
                return None
            if impl.wrapper:
                _note(plugin, result, kind)
            return result

        return wrapper

    @functools.wraps(function)
    def implementation(*args: Any, **kwargs: Any) -> Any:
        try:
            result = function(*args, **kwargs)
        except Exception as exc:
            _failed(plugin, hook, exc)
            return None
        if result is not None:
            _note(plugin, result, "impl")
        return result

    return implementation


class AttributingManager(pluggy.PluginManager):
    """A pluggy manager whose implementations note their answers (see the module doc).

    The wrapping happens in `register`, so a plugin registered by hand (a test's class, a
    plugin registering another) is attributed like one loaded from an entry point.
    """

    def register(self, plugin: Any, name: str | None = None) -> str | None:
        registered = super().register(plugin, name)
        if registered is None:
            return None
        for caller in self.get_hookcallers(plugin) or []:
            for impl in caller.get_hookimpls():
                if impl.plugin is plugin and not hasattr(impl.function, "__ingestd_wrapped__"):
                    wrapped = _attributed(impl, caller.name)
                    wrapped.__ingestd_wrapped__ = True  # type: ignore[attr-defined]
                    # HookImpl.function is Final only to type checkers; pluggy calls
                    # whatever it holds, with the argument names read from the original.
                    impl.function = wrapped  # type: ignore[misc]
        return registered


def call(pm: pluggy.PluginManager, hook: str, kwargs: dict[str, Any]) -> tuple[Any, Notes]:
    """``pm.hook.<hook>(**kwargs)``; its result and the notes taken during the call."""
    notes: Notes = []
    token = _notes.set(notes)
    try:
        return getattr(pm.hook, hook)(**kwargs), notes
    finally:
        _notes.reset(token)


def answered_by(value: Any, notes: Notes) -> str | None:
    """Who produced a firstresult hook's `value`: the first note that *is* it.

    Implementations note before wrappers (whose teardowns run after them, innermost
    first), so a wrapper passing a result through leaves the credit with whoever made it.
    A result no note matches was forced by an old-style hookwrapper: the outermost one.
    """
    for plugin, noted, _ in notes:
        if noted is value and value is not None:
            return plugin
    return _old_style(notes)


def answers(values: list[Any], notes: Notes) -> list[tuple[Any, str | None]]:
    """(value, plugin) for each value of a list hook's result, each note credited once.

    A value no implementation returned came from a wrapper that built a new list.
    """
    impls = [(plugin, noted) for plugin, noted, kind in notes if kind == "impl"]
    lists = [(p, n) for p, n, kind in notes if kind == "wrapper" and isinstance(n, list)]
    credited: list[tuple[Any, str | None]] = []
    for value in values:
        index = next((i for i, (_, noted) in enumerate(impls) if noted is value), None)
        if index is not None:
            credited.append((value, impls.pop(index)[0]))
            continue
        plugin = next((p for p, n in lists if any(v is value for v in n)), None)
        credited.append((value, plugin or _old_style(notes)))
    return credited


def _old_style(notes: Notes) -> str | None:
    old = [plugin for plugin, _, kind in notes if kind == "old-style"]
    return old[0] if old else None
