"""Finding, loading and registering plugins — bundled ones exactly like third-party ones.

find: the ``ingestd`` entry-point group (sorted, for a deterministic order) plus local
``.py`` files named in the config. load: each in its own try, so one broken plugin is
reported by name and the rest still load. register: into one pluggy manager, then
`check_pending` so a misspelt hook name is an error rather than silently never called.
call: always through pluggy's hook caller (`Plugins.call_first`, `call_all`, `notify`), so
wrappers and ordering work as pluggy documents, with the answering or raising plugin still
named (`ingestd.hookcall`).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy

from ingestd import hookcall, hookspecs
from ingestd.errors import PluginError
from ingestd.logging import get_logger
from ingestd.registry import BackendFactory, Registry, SinkFactory

ENTRY_POINT_GROUP = "ingestd"
CORE_PLUGINS = (("metrics", "ingestd.eventmetrics"),)
"""Modules of the core that are plugins like any other: (name, module), registered after the
entry points; ``disable_plugins`` names them as it names any plugin."""
log = get_logger()


@dataclass
class PluginInfo:
    """One row of ``ingestd plugins``."""

    name: str
    source: str  # "entry point" | "local file" | "core"
    distribution: str = ""
    version: str = ""
    module: str = ""
    hooks: list[str] = field(default_factory=list)
    status: str = "loaded"  # loaded | disabled | failed: <why>


@dataclass
class Plugins:
    """The loaded plugin manager and the registries its plugins filled."""

    manager: pluggy.PluginManager
    backends: Registry[BackendFactory]
    sinks: Registry[SinkFactory]
    info: list[PluginInfo]

    @property
    def hook(self) -> Any:
        return self.manager.hook

    def failed(self) -> list[PluginInfo]:
        return [p for p in self.info if p.status.startswith("failed")]

    def call_first(self, hook_name: str, **kwargs: Any) -> tuple[Any, str | None]:
        """Call a firstresult hook through pluggy; (result, name of the plugin that answered).

        Wrappers, tryfirst/trylast and hook-call monitoring apply as pluggy documents; the
        plugin named is the one whose answer came out (see `ingestd.hookcall`), or None
        when nobody answered. A plugin that raises fails the call with a `PluginError`
        naming it.
        """
        result, notes = hookcall.call(self.manager, hook_name, kwargs)
        return result, hookcall.answered_by(result, notes)

    def call_all(self, hook_name: str, **kwargs: Any) -> list[tuple[Any, str | None]]:
        """Call a hook through pluggy; (result, plugin name) for each non-None result."""
        results, notes = hookcall.call(self.manager, hook_name, kwargs)
        return hookcall.answers(list(results or []), notes)

    def notify(self, hook_name: str, **kwargs: Any) -> None:
        """Call an event hook: every implementation runs; one that raises is logged with
        its plugin's name and never reaches the caller (`ingestd.hookcall.EVENT_HOOKS`)."""
        getattr(self.manager.hook, hook_name)(**kwargs)


def _label(ep: EntryPoint) -> str:
    dist = ep.dist.name if ep.dist else "?"
    return f"{dist}[{ep.name}]"


def _load_local(path: Path) -> ModuleType:
    """Import a local plugin file under a private module name."""
    name = f"ingestd_local_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _hooks_of(pm: pluggy.PluginManager, plugin: object) -> list[str]:
    return sorted(h.name for h in pm.get_hookcallers(plugin) or [])


def load_plugins(
    local: tuple[str, ...] = (),
    disabled: tuple[str, ...] = (),
    *,
    entry_points_enabled: bool = True,
) -> Plugins:
    """Build the manager, load every plugin, fill the backend and sink registries."""
    pm = hookcall.AttributingManager(ENTRY_POINT_GROUP)
    pm.add_hookspecs(hookspecs)
    info: list[PluginInfo] = []
    eps = (
        sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name)
        if entry_points_enabled
        else []
    )
    for ep in eps:
        row = PluginInfo(
            name=ep.name,
            source="entry point",
            distribution=ep.dist.name if ep.dist else "",
            version=ep.dist.version if ep.dist else "",
            module=ep.value,
        )
        info.append(row)
        if ep.name in disabled:
            row.status = "disabled"
            continue
        try:
            plugin = ep.load()
            pm.register(plugin, name=ep.name)
            row.hooks = _hooks_of(pm, plugin)
        except Exception as exc:  # one broken plugin must not stop the others
            row.status = f"failed: {type(exc).__name__}: {exc}"
            log.error(
                "plugin_load_failed",
                plugin=_label(ep),
                error=str(exc),
                action="continuing without it",
            )
    for name, module_name in CORE_PLUGINS:
        row = PluginInfo(name=name, source="core", module=module_name)
        info.append(row)
        if name in disabled:
            row.status = "disabled"
            continue
        module = importlib.import_module(module_name)
        pm.register(module, name=name)
        row.hooks = _hooks_of(pm, module)
    for item in local:
        row = PluginInfo(
            name=Path(item).stem if item.endswith(".py") else item, source="local file"
        )
        row.module = item
        info.append(row)
        if row.name in disabled:
            row.status = "disabled"
            continue
        try:
            module = (
                _load_local(Path(item)) if item.endswith(".py") else importlib.import_module(item)
            )
            pm.register(module, name=row.name)
            row.hooks = _hooks_of(pm, module)
        except Exception as exc:
            row.status = f"failed: {type(exc).__name__}: {exc}"
            log.error(
                "plugin_load_failed", plugin=item, error=str(exc), action="continuing without it"
            )
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"plugin {exc.plugin!r} implements an unknown hook: {exc}") from None

    backends: Registry[BackendFactory] = Registry("backend")
    sinks: Registry[SinkFactory] = Registry("sink")

    def registrar(registry: Registry[Any]) -> Any:
        def register(name: str, factory: Any) -> None:
            registry.register(name, factory, plugin=getattr(factory, "__module__", ""))

        return register

    pm.hook.ingestd_register_backends.call_historic(kwargs={"register": registrar(backends)})
    pm.hook.ingestd_register_sinks.call_historic(kwargs={"register": registrar(sinks)})
    return Plugins(manager=pm, backends=backends, sinks=sinks, info=info)
