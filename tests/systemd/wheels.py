"""The wheels a user installs: ingestd's own and its dependencies', built from this checkout.

The README's install is a wheel put into its own virtual environment, offline when the host
has no network. `wheelhouse` builds that set with `pip wheel` (pip's cache makes it quick
after the first time); `install_offline` puts it into a fresh venv the same way a user would.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def pip(*args: str, python: str = sys.executable, timeout: float = 600) -> str:
    """Run pip; its output is part of the failure message."""
    result = subprocess.run(
        [python, "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, f"pip {' '.join(args)} failed:\n{result.stdout}{result.stderr}"
    return result.stdout


_NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", "demo"
)


def build_wheelhouse(folder: Path) -> Path:
    """ingestd's wheel and every dependency's, in `folder`; returns ingestd's wheel.

    Built from a copy of the checkout: pip builds in the source folder, and a build/ left
    there by an earlier build would lend the wheel files the source no longer has.
    """
    with tempfile.TemporaryDirectory(prefix="ingestd-src-") as scratch:
        source = Path(scratch) / "ingestd"
        shutil.copytree(REPO, source, symlinks=True, ignore=_NOT_SOURCE)
        pip("wheel", "--quiet", "--wheel-dir", str(folder), str(source))
    (wheel,) = folder.glob("ingestd-*.whl")
    return wheel


def wheel_members(wheel: Path, prefix: str) -> dict[str, bytes]:
    """Files under `prefix` in a wheel, by their path below it."""
    with zipfile.ZipFile(wheel) as archive:
        return {
            name.removeprefix(prefix): archive.read(name)
            for name in archive.namelist()
            if name.startswith(prefix) and not name.endswith("/")
        }


def install_offline(venv: Path, wheelhouse: Path, python: str = "python3") -> Path:
    """``python3 -m venv VENV && VENV/bin/pip install --no-index --find-links WHEELHOUSE
    ingestd``; returns the venv's ingestd."""
    subprocess.run([python, "-m", "venv", str(venv)], check=True, timeout=120)
    pip(
        "install",
        "--quiet",
        "--no-index",
        "--find-links",
        str(wheelhouse),
        "ingestd",
        python=str(venv / "bin/python"),
    )
    return venv / "bin/ingestd"
