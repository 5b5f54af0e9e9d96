"""The plugin system: bundled plugins through the front door, isolation, documentation."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

import ingestd
from ingestd import hookspecs
from ingestd.errors import PluginError
from ingestd.plugins import load_plugins

ROOT = Path(__file__).parents[2]
BUNDLED = {"ffmpeg", "files", "mapping", "routing", "symbl"}


def hook_names() -> list[str]:
    return [n for n in dir(hookspecs) if n.startswith("ingestd_")]


class TestLoading:
    def test_bundled_plugins_load_through_entry_points(self) -> None:
        """Every bundled plugin is found in the entry-point group, as a third party's would be."""
        plugins = load_plugins()
        rows = {row.name: row for row in plugins.info}
        assert set(rows) >= BUNDLED
        for name in BUNDLED:
            assert rows[name].source == "entry point"
            assert rows[name].status == "loaded"
            assert rows[name].hooks, f"{name} implements no hook"

    def test_bundled_registries(self) -> None:
        """The bundled plugins register the symbl and sandbox backends and the files sink."""
        plugins = load_plugins()
        assert {"symbl", "sandbox"} <= set(plugins.backends.names())
        assert "files" in plugins.sinks.names()

    def test_broken_plugin_is_reported_and_the_rest_load(self, tmp_path: Path) -> None:
        """A plugin that fails to import is named with its error; the others still load."""
        broken = tmp_path / "broken_plugin.py"
        broken.write_text("import module_that_does_not_exist\n")
        plugins = load_plugins((str(broken),))
        rows = {row.name: row for row in plugins.info}
        assert rows["broken_plugin"].status.startswith("failed: ModuleNotFoundError")
        assert all(rows[name].status == "loaded" for name in BUNDLED)

    def test_local_plugin_answers_first(self, tmp_path: Path) -> None:
        """A local plugin's firstresult answer wins over the bundled trylast default."""
        local = tmp_path / "mine.py"
        local.write_text(
            "from ingestd import hookimpl\n"
            "@hookimpl\n"
            "def ingestd_conversation_key(recording):\n"
            "    return 'everything-together'\n"
        )
        plugins = load_plugins((str(local),))
        key, plugin = plugins.call_first("ingestd_conversation_key", recording=None)
        assert (key, plugin) == ("everything-together", "mine")

    def test_misspelt_hook_is_an_error(self, tmp_path: Path) -> None:
        """An implementation of a hook that does not exist fails loudly (check_pending)."""
        local = tmp_path / "typo.py"
        local.write_text(
            "from ingestd import hookimpl\n@hookimpl\ndef ingestd_prob(recording):\n    pass\n"
        )
        with pytest.raises(PluginError, match="ingestd_prob"):
            load_plugins((str(local),))

    def test_raising_hook_names_the_plugin(self, tmp_path: Path) -> None:
        """An exception inside a hook becomes a PluginError naming plugin and hook."""
        local = tmp_path / "buggy.py"
        local.write_text(
            "from ingestd import hookimpl\n"
            "@hookimpl\n"
            "def ingestd_conversation_key(recording):\n"
            "    raise ValueError('oops')\n"
        )
        plugins = load_plugins((str(local),))
        with pytest.raises(PluginError, match=r"'buggy' raised in ingestd_conversation_key"):
            plugins.call_first("ingestd_conversation_key", recording=None)

    def test_disabled_plugin_is_not_loaded(self) -> None:
        """disable_plugins keeps an entry point from loading."""
        plugins = load_plugins(disabled=("mapping",))
        rows = {row.name: row for row in plugins.info}
        assert rows["mapping"].status == "disabled"
        assert plugins.call_first("ingestd_conversation_key", recording=None) == (None, None)


class TestBoundaries:
    def test_core_never_imports_bundled_plugins(self) -> None:
        """ingestd/ stands alone; plugins depend on it, never the other way round."""
        offenders = [
            str(path.relative_to(ROOT))
            for path in (ROOT / "ingestd").rglob("*.py")
            if re.search(r"^\s*(from|import) ingestd_", path.read_text(), re.MULTILINE)
        ]
        assert offenders == []

    def test_public_api_is_exactly_all(self) -> None:
        """ingestd.__all__ lists every public name of the package namespace that is API."""
        public = {
            name
            for name, value in vars(ingestd).items()
            if not name.startswith("_") and not inspect.ismodule(value) and name != "annotations"
        }
        assert public == set(ingestd.__all__)


class TestDocumentation:
    @pytest.mark.parametrize("name", hook_names())
    def test_hook_is_in_the_readme_with_its_signature(self, name: str) -> None:
        """The README's hook table shows each hook with its exact arguments."""
        params = ", ".join(inspect.signature(getattr(hookspecs, name)).parameters)
        assert f"`{name}({params})`" in (ROOT / "README.md").read_text()

    @pytest.mark.parametrize("name", hook_names())
    def test_hook_has_a_docstring_saying_when(self, name: str) -> None:
        """Each hookspec documents when it is called and what it returns or receives."""
        doc = inspect.getdoc(getattr(hookspecs, name)) or ""
        assert len(doc) > 40, name
