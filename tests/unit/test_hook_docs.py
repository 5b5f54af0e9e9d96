"""Meta-tests of the plugin manual (as datasette has): every hookspec has a test named after
it and a README entry, and the hookspecs' prose names only things that exist."""

from __future__ import annotations

import ast
import dataclasses
import functools
import importlib
import inspect
import re
from dataclasses import is_dataclass
from pathlib import Path

import pytest

import ingestd
from ingestd import hookspecs
from ingestd.commands import build_parser

ROOT = Path(__file__).parents[2]
HOOKS = sorted(n for n in dir(hookspecs) if n.startswith("ingestd_"))


@functools.cache
def test_names() -> set[str]:
    """Every test function's name in the suite (not itself a test: it returns them)."""
    names = set()
    for path in (ROOT / "tests").rglob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                names.add(node.name)
    return names


test_names.__test__ = False  # type: ignore[attr-defined]


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_test_named_after_it(hook: str) -> None:
    """``ingestd_accept`` is exercised by a ``test_hook_accept``, and so on for each hook."""
    assert f"test_hook_{hook.removeprefix('ingestd_')}" in test_names()


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_in_the_readme_table_with_its_arguments(hook: str) -> None:
    """The README's hook table has a row for each hook, with its exact arguments."""
    params = ", ".join(inspect.signature(getattr(hookspecs, hook)).parameters)
    rows = [line for line in (ROOT / "README.md").read_text().splitlines() if line.startswith("|")]
    assert any(row.startswith(f"| `{hook}({params})`") for row in rows)


def _references() -> list[str]:
    """Every ``code`` span of hookspecs.py's docstrings and comments."""
    text = (ROOT / "ingestd" / "hookspecs.py").read_text()
    return [a or b for a, b in re.findall(r"``([^`]+)``|`([^`]+)`", text)]


def _resolves(dotted: str) -> bool:
    """``ingestd.registry.Backend.submit`` -> import the longest module, then attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            value = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            fields = {f.name for f in dataclasses.fields(value)} if is_dataclass(value) else ()
            if name in fields:  # a dataclass field without a default is no class attribute
                return name == parts[-1]
            if not hasattr(value, name):
                return False
            value = getattr(value, name)
        return True
    return False


def test_hookspecs_name_only_hooks_modules_and_commands_that_exist() -> None:
    """A hook, module, attribute, plugin or command named in the hook manual exists."""
    commands = set(build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    packages = {p.name for p in (ROOT / "plugins").iterdir()}
    missing = []
    for ref in _references():
        ref = ref.strip().removesuffix("()")
        command = re.match(r"ingestd ([a-z][a-z-]+)", ref)
        if command:
            if command.group(1) not in commands:
                missing.append(ref)
        elif re.fullmatch(r"ingestd_\w+", ref):
            if ref not in HOOKS and ref not in packages:
                missing.append(ref)
        elif re.fullmatch(r"ingestd(\.\w+)+", ref):
            if not _resolves(ref):
                missing.append(ref)
        elif re.fullmatch(r"[A-Z]\w+(\.\w+)*", ref):  # Recording.relpath, Backend.submit
            head, *rest = ref.split(".")
            if head not in ingestd.__all__ or not _resolves(".".join(["ingestd", head, *rest])):
                missing.append(ref)
    assert missing == []


def test_the_reference_check_sees_the_references() -> None:
    """The check above finds the kinds of name it is about (so it cannot pass vacuously)."""
    refs = set(_references())
    assert {"ingestd.registry.Backend", "ingestd_probe", "ingestd explain FILE"} & refs
    assert any(r.startswith("ingestd ") for r in refs)
    assert any(re.fullmatch(r"ingestd(\.\w+)+", r) for r in refs)
