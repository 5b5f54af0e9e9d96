"""What a plugin may use: the names `ingestd` exports, and nothing of another plugin.

The bundled plugins are held to what a third party gets: every name they take from the core
comes from ``ingestd.__all__`` (or one of ``ingestd.PUBLIC_MODULES``), and none imports
another bundled plugin, so disabling one never loads it through a neighbour.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import ingestd
from ingestd import OptionProblems, unknown_keys
from ingestd.configload import WATCH_KEYS, parse_config
from ingestd.daemon import validate_watches
from ingestd.errors import ConfigError
from ingestd.plugins import load_plugins

ROOT = Path(__file__).parents[2]
PLUGINS = sorted(p.name for p in (ROOT / "plugins").iterdir() if p.name.startswith("ingestd_"))
ENTRY_POINTS = {
    "ingestd_ffmpeg": "ffmpeg",
    "ingestd_routing": "routing",
    "ingestd_mapping": "mapping",
    "ingestd_symbl": "symbl",
    "ingestd_files": "files",
    "ingestd_database": "database",
    "ingestd_slack": "slack",
    "ingestd_openai": "openai",
}


def imports_of(package: str) -> list[tuple[str, str, str]]:
    """``(file, module, name)`` for every import of an ingestd module in `package`."""
    found = []
    for path in sorted((ROOT / "plugins" / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                for alias in node.names:
                    found.append((where, node.module, alias.name))
            elif isinstance(node, ast.Import):
                found.extend((where, alias.name, "") for alias in node.names)
    return [f for f in found if f[1].split(".")[0].startswith("ingestd")]


class TestBundledPluginsUseThePublicApi:
    @pytest.mark.parametrize("package", PLUGINS)
    def test_only_exported_names_and_public_modules(self, package: str) -> None:
        """Every name a bundled plugin takes from the core is exported by `ingestd`."""
        public_modules = {m.rpartition(".")[2] for m in ingestd.PUBLIC_MODULES}
        offenders = []
        for where, module, name in imports_of(package):
            top = module.split(".")[0]
            if top != "ingestd":
                continue
            if module == "ingestd":
                ok = name in ingestd.__all__ or name in public_modules
            else:
                ok = module in ingestd.PUBLIC_MODULES
            if not ok:
                offenders.append(f"{where}: from {module} import {name}")
        assert offenders == []

    @pytest.mark.parametrize("package", PLUGINS)
    def test_no_bundled_plugin_imports_another(self, package: str) -> None:
        """A bundled plugin depends on the core only, never on a neighbour."""
        others = [
            f"{where}: {module}"
            for where, module, _ in imports_of(package)
            if module.split(".")[0].startswith("ingestd_") and module.split(".")[0] != package
        ]
        assert others == []

    @pytest.mark.parametrize("package", sorted(ENTRY_POINTS))
    def test_a_disabled_plugin_is_never_imported(self, package: str) -> None:
        """With one bundled plugin disabled, loading the others does not import it."""
        script = (
            "import json, sys\n"
            "from ingestd.plugins import load_plugins\n"
            f"load_plugins(disabled=({ENTRY_POINTS[package]!r},))\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('ingestd_'))))\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
        )
        loaded = json.loads(out.stdout)
        assert not [m for m in loaded if m == package or m.startswith(package + ".")]
        assert len({m.split(".")[0] for m in loaded}) >= len(ENTRY_POINTS) - 1

    def test_every_exported_name_exists(self) -> None:
        """``ingestd.__all__`` has no stale entry, and every public module imports."""
        import importlib

        for name in ingestd.__all__:
            assert hasattr(ingestd, name), name
        for module in ingestd.PUBLIC_MODULES:
            importlib.import_module(module)


class TestOptionsHelper:
    def test_unknown_keys_get_a_did_you_mean_or_the_known_keys(self) -> None:
        """A near miss names the key meant; a stranger lists what is known."""
        data = {"path": "x", "formt": "json", "colour": "red", "type": "files"}
        assert unknown_keys(data, ("path", "format"), "sinks[0]", ignored=("type",)) == [
            "sinks[0].formt: unknown key; did you mean 'format'?",
            "sinks[0].colour: unknown key; known keys: path, format",
        ]

    def test_top_level_keys_have_no_prefix(self) -> None:
        """Without a key path, the key itself is the path."""
        assert unknown_keys({"sinkz": []}, ("sinks",)) == [
            "sinkz: unknown key; did you mean 'sinks'?"
        ]

    def test_problems_are_raised_together(self) -> None:
        """OptionProblems collects lines under its key path and raises them at once."""
        problems = OptionProblems("myapi")
        problems.unknown_keys({"webhok": {}}, ("webhook", "model"))
        problems.unknown_keys({"lisen": 1}, ("listen",), "webhook")
        problems.add("model", "expected a model name, got 3")
        with pytest.raises(ConfigError) as caught:
            problems.raise_if_any()
        assert caught.value.problems == [
            "myapi.webhok: unknown key; did you mean 'webhook'?",
            "myapi.webhook.lisen: unknown key; did you mean 'listen'?",
            "myapi.model: expected a model name, got 3",
        ]
        OptionProblems("quiet").raise_if_any()  # nothing to say, nothing raised


RETENTION_PLUGIN = """\
from ingestd import hookimpl

@hookimpl
def ingestd_watch_keys():
    return ["retention_days"]

@hookimpl
def ingestd_validate_watch(watch):
    days = watch.options.get("retention_days", 30)
    if not isinstance(days, int) or days < 1:
        return [f"watch[{watch.name}].retention_days: expected whole days >= 1, got {days!r}"]
    return []
"""


class TestPluginWatchKeys:
    def _config(self, tmp_path: Path, days: str) -> str:
        return (
            f"symbl: {{base_url: sandbox}}\n"
            f"watch:\n"
            f"  - path: {tmp_path}\n"
            f"    name: calls\n"
            f"    retention_days: {days}\n"
        )

    def test_a_plugin_owns_its_watch_key(self, tmp_path: Path) -> None:
        """A key a loaded plugin declares is accepted and reaches it in ``watch.options``."""
        plugin = tmp_path / "retention.py"
        plugin.write_text(RETENTION_PLUGIN)
        config = parse_config(self._config(tmp_path, "7"), source="i.yaml")
        validate_watches(config, load_plugins((str(plugin),)))
        assert config.watches[0].options == {"retention_days": 7}

    def test_the_plugins_validator_names_the_line(self, tmp_path: Path) -> None:
        """A bad value is reported by the plugin, with the file and line of its key."""
        plugin = tmp_path / "retention.py"
        plugin.write_text(RETENTION_PLUGIN)
        config = parse_config(self._config(tmp_path, "soon"), source="i.yaml")
        with pytest.raises(ConfigError) as caught:
            validate_watches(config, load_plugins((str(plugin),)))
        assert caught.value.problems == [
            "i.yaml:5: watch[calls].retention_days: expected whole days >= 1, got 'soon'"
        ]

    def test_without_the_plugin_the_key_is_unknown(self, tmp_path: Path) -> None:
        """Nobody owns the key: an unknown key with its line, and a did-you-mean for typos."""
        text = self._config(tmp_path, "7") + "    recursiv: true\n"
        config = parse_config(text, source="i.yaml")
        with pytest.raises(ConfigError) as caught:  # core keys only, no plugin's
            validate_watches(config, load_plugins(entry_points_enabled=False))
        assert caught.value.problems == [
            "i.yaml:5: watch[0].retention_days: unknown key; known keys: " + ", ".join(WATCH_KEYS),
            "i.yaml:6: watch[0].recursiv: unknown key; did you mean 'recursive'?",
        ]
