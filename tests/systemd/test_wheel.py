"""ingestd installed from its wheel, outside the checkout, as the README tells a user.

The other tests import ingestd from the checkout, where the systemd/ folder sits beside the
package; an installed wheel has only what the package data ships.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.systemd.wheels import REPO, install_offline, wheel_members

UNITS = ("ingestd.service", "ingestd@.service", "sysusers.d/ingestd.conf")


def test_wheel_ships_the_units_of_systemd_folder(wheelhouse: Path) -> None:
    """The wheel's ingestd/units/ holds systemd/'s files byte for byte: one copy, packaged."""
    (wheel,) = wheelhouse.glob("ingestd-*.whl")
    packaged = wheel_members(wheel, "ingestd/units/")
    assert sorted(packaged) == sorted(UNITS)
    for name in UNITS:
        assert packaged[name] == (REPO / "systemd" / name).read_bytes(), name
    assert (REPO / "ingestd/units").resolve() == (REPO / "systemd").resolve()


def test_install_unit_from_an_installed_wheel(wheelhouse: Path, tmp_path: Path) -> None:
    """A fresh venv outside the checkout, installed offline from the wheelhouse: `ingestd
    install-unit --dry-run` and a real run under --prefix both find the packaged units."""
    ingestd = install_offline(tmp_path / "opt-ingestd", wheelhouse)
    root = tmp_path / "root"

    def install_unit(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(ingestd), "install-unit", "--prefix", str(root), *args],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,  # not the checkout: nothing may come from it
        )

    dry = install_unit("--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would write /etc/systemd/system/ingestd.service" in dry.stdout
    assert not root.exists() or not any(root.rglob("*"))

    real = install_unit()
    assert real.returncode == 0, real.stderr
    for name in ("ingestd.service", "ingestd@.service"):
        unit = (root / "etc/systemd/system" / name).read_text()
        assert f"ExecStart={ingestd} run --config" in unit, name
        shipped = (REPO / "systemd" / name).read_text()
        packaged_exec = "ExecStart=/opt/ingestd/bin/ingestd "
        assert unit == shipped.replace(packaged_exec, f"ExecStart={ingestd} ")
