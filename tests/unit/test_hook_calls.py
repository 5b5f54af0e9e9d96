"""Hooks are called through pluggy's caller: wrappers, ordering and monitoring work as pluggy
documents, and the plugin that answered or raised is still named."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import structlog
from prometheus_client import CollectorRegistry

from ingestd import eventmetrics, hookimpl
from ingestd.errors import PluginError, Rejected
from ingestd.lifecycle import State
from ingestd.plugins import Plugins, load_plugins
from ingestd.store import SqliteStore
from ingestd.transitions import Transitions, recording_of


def with_plugins(*plugins: tuple[str, object]) -> Plugins:
    """Only the given plugins (no entry points), registered in order, like tests in pluggy."""
    loaded = load_plugins(disabled=("metrics",), entry_points_enabled=False)
    for name, plugin in plugins:
        loaded.manager.register(plugin, name=name)
    return loaded


def answering(value: Any, **opts: Any) -> SimpleNamespace:
    """A plugin answering `ingestd_conversation_key` with `value`."""

    def ingestd_conversation_key(recording: Any) -> Any:
        return value

    return SimpleNamespace(ingestd_conversation_key=hookimpl(**opts)(ingestd_conversation_key))


def pass_through(calls: list[str], name: str = "wrap", **opts: Any) -> SimpleNamespace:
    """The wrapper of issue 11: ``result = yield; return result``; notes when it runs."""

    def ingestd_conversation_key(recording: Any) -> Any:
        calls.append(f"{name} before")
        result = yield
        calls.append(f"{name} after")
        return result

    return SimpleNamespace(
        ingestd_conversation_key=hookimpl(wrapper=True, **opts)(ingestd_conversation_key)
    )


class TestWrappers:
    def test_a_pass_through_wrapper_leaves_the_answer_and_the_credit(self) -> None:
        """``wrapper=True`` with ``result = yield; return result`` changes nothing."""
        calls: list[str] = []
        plugins = with_plugins(("mapping", answering("k")), ("wrap", pass_through(calls)))
        assert plugins.call_first("ingestd_conversation_key", recording=None, history=None) == (
            "k",
            "mapping",
        )
        assert calls == ["wrap before", "wrap after"]

    def test_a_wrapper_that_changes_the_result_is_credited(self) -> None:
        """A wrapper returning another value answers the stage, and is named for it."""

        class Upper:
            @hookimpl(wrapper=True)
            def ingestd_conversation_key(self, recording: Any, history: Any) -> Any:
                result = yield
                return result.upper()

        plugins = with_plugins(("mapping", answering("k")), ("upper", Upper()))
        assert plugins.call_first("ingestd_conversation_key", recording=None, history=None) == (
            "K",
            "upper",
        )

    def test_an_old_style_hookwrapper_runs_and_may_force_a_result(self) -> None:
        """``hookwrapper=True`` gets pluggy's Result; a forced result is credited to it."""
        seen: list[Any] = []

        class Old:
            @hookimpl(hookwrapper=True)
            def ingestd_conversation_key(self, recording: Any, history: Any) -> Any:
                outcome = yield
                seen.append(outcome.get_result())
                outcome.force_result("forced")

        plugins = with_plugins(("mapping", answering("k")), ("old", Old()))
        assert plugins.call_first("ingestd_conversation_key", recording=None, history=None) == (
            "forced",
            "old",
        )
        assert seen == ["k"]

    def test_an_old_style_hookwrapper_passing_through_leaves_the_credit(self) -> None:
        class Old:
            @hookimpl(hookwrapper=True)
            def ingestd_conversation_key(self, recording: Any, history: Any) -> Any:
                yield

        plugins = with_plugins(("mapping", answering("k")), ("old", Old()))
        assert plugins.call_first("ingestd_conversation_key", recording=None, history=None) == (
            "k",
            "mapping",
        )

    def test_tryfirst_and_trylast_order_wrappers(self) -> None:
        """A tryfirst wrapper is outermost, a trylast one innermost, whatever the order of
        registration; an implementation's trylast makes it the fallback answer."""
        calls: list[str] = []
        plugins = with_plugins(
            ("fallback", answering("default", trylast=True)),
            ("third-party", answering("mine")),
            ("outer", pass_through(calls, "outer", tryfirst=True)),
            ("middle", pass_through(calls, "middle")),
            ("inner", pass_through(calls, "inner", trylast=True)),
        )
        assert plugins.call_first("ingestd_conversation_key", recording=None, history=None) == (
            "mine",
            "third-party",
        )
        assert calls == [
            "outer before",
            "middle before",
            "inner before",
            "inner after",
            "middle after",
            "outer after",
        ]

    def test_a_list_hook_credits_each_value_to_its_plugin(self) -> None:
        """call_all pairs each non-None result with the plugin that returned it."""

        class Yes:
            @hookimpl
            def ingestd_accept(self, recording: Any) -> bool:
                return True

        class No:
            @hookimpl
            def ingestd_accept(self, recording: Any) -> bool:
                return False

        class Wrap:
            @hookimpl(wrapper=True)
            def ingestd_accept(self, recording: Any) -> Any:
                return (yield)

        plugins = with_plugins(("yes", Yes()), ("no", No()), ("wrap", Wrap()))
        assert plugins.call_all("ingestd_accept", recording=None) == [(False, "no"), (True, "yes")]

    def test_hook_call_monitoring_sees_every_call(self) -> None:
        """``add_hookcall_monitoring`` works, as calls go through pluggy's hook caller."""
        plugins = with_plugins(("mapping", answering("k")))
        seen: list[tuple[str, Any]] = []
        undo = plugins.manager.add_hookcall_monitoring(
            lambda name, impls, kwargs: None,
            lambda outcome, name, impls, kwargs: seen.append((name, outcome.get_result())),
        )
        try:
            plugins.call_first("ingestd_conversation_key", recording=None, history=None)
        finally:
            undo()
        assert seen == [("ingestd_conversation_key", "k")]


class TestErrors:
    def test_an_implementation_that_raises_is_named(self) -> None:
        class Buggy:
            @hookimpl
            def ingestd_conversation_key(self, recording: Any, history: Any) -> Any:
                raise ValueError("oops")

        calls: list[str] = []
        plugins = with_plugins(("buggy", Buggy()), ("wrap", pass_through(calls)))
        with pytest.raises(PluginError, match=r"plugin 'buggy' raised in ingestd_conversation_key"):
            plugins.call_first("ingestd_conversation_key", recording=None, history=None)
        assert calls == ["wrap before"]  # the wrapper saw the error go through

    def test_a_wrapper_that_raises_is_named(self) -> None:
        class Broken:
            @hookimpl(wrapper=True)
            def ingestd_conversation_key(self, recording: Any, history: Any) -> Any:
                yield
                raise KeyError("lost")

        plugins = with_plugins(("mapping", answering("k")), ("broken", Broken()))
        with pytest.raises(
            PluginError, match=r"plugin 'broken' raised in ingestd_conversation_key"
        ):
            plugins.call_first("ingestd_conversation_key", recording=None, history=None)

    def test_an_ingestd_error_keeps_its_own_message(self) -> None:
        """`Rejected` (bad input) goes through as it is: the user's reason, not a bug."""

        class Picky:
            @hookimpl
            def ingestd_conversation_key(self, recording: Any, history: Any) -> Any:
                raise Rejected("bad sidecar")

        plugins = with_plugins(("picky", Picky()))
        with pytest.raises(Rejected, match="bad sidecar"):
            plugins.call_first("ingestd_conversation_key", recording=None, history=None)

    def test_an_event_hook_that_raises_is_logged_and_the_others_still_run(self) -> None:
        """A notification never fails the caller; the log names the plugin."""
        heard: list[str] = []

        class Loud:
            @hookimpl
            def ingestd_recording_failed(self, recording: Any, error: str) -> None:
                raise RuntimeError("pager down")

        class Quiet:
            @hookimpl
            def ingestd_recording_failed(self, recording: Any, error: str) -> None:
                heard.append(error)

        plugins = with_plugins(("quiet", Quiet()), ("loud", Loud()))
        with structlog.testing.capture_logs() as logs:
            plugins.notify("ingestd_recording_failed", recording=None, error="boom")
        assert heard == ["boom"]
        failures = [e for e in logs if e["event"] == "event_hook_failed"]
        assert [(e["plugin"], e["hook"]) for e in failures] == [
            ("loud", "ingestd_recording_failed")
        ]


def test_local_plugin_file_wrapper_is_called_through_pluggy(tmp_path: Path) -> None:
    """The issue's local plugin, loaded from a file as the YAML names it, passes through."""
    local = tmp_path / "wrapping.py"
    local.write_text(
        "from ingestd import hookimpl\n"
        "@hookimpl(wrapper=True)\n"
        "def ingestd_conversation_key(recording):\n"
        "    result = yield\n"
        "    return result\n"
    )
    plugins = load_plugins((str(local),), entry_points_enabled=False)
    plugins.manager.register(answering("k"), name="mapping")
    assert plugins.call_first("ingestd_conversation_key", recording=None, history=None) == (
        "k",
        "mapping",
    )


class TestCoreMetricsPlugin:
    """`ingestd.eventmetrics`: the core's own event plugin, listed and disabled like any."""

    def counts(self) -> tuple[float, float]:
        registry = CollectorRegistry()
        for counter in eventmetrics.COUNTERS:
            registry.register(counter)
        changes = registry.get_sample_value(
            "ingestd_state_changes_total", {"old": "discovered", "new": "rejected"}
        )
        ends = registry.get_sample_value(
            "ingestd_recordings_finished_total", {"outcome": "rejected"}
        )
        return changes or 0.0, ends or 0.0

    def reject_one(self, tmp_path: Path, plugins: Plugins) -> None:
        store = SqliteStore(tmp_path / "state.db")
        changes = Transitions(store, plugins, lambda row: recording_of(row, {}))
        row = changes.record(
            watch="w", watch_root="/in", relpath="x.wav", size_bytes=1, mtime=1.0, sha256="x"
        )
        changes.change(row, State.REJECTED, error="not media")
        store.close()

    def test_it_counts_changes_and_ends(self, tmp_path: Path) -> None:
        plugins = load_plugins(entry_points_enabled=False)
        assert [(r.name, r.source, r.status) for r in plugins.info] == [
            ("metrics", "core", "loaded")
        ]
        before = self.counts()
        self.reject_one(tmp_path, plugins)
        assert self.counts() == (before[0] + 1, before[1] + 1)

    def test_disable_plugins_switches_it_off(self, tmp_path: Path) -> None:
        plugins = load_plugins(disabled=("metrics",), entry_points_enabled=False)
        assert [r.status for r in plugins.info] == ["disabled"]
        before = self.counts()
        self.reject_one(tmp_path, plugins)
        assert self.counts() == before
