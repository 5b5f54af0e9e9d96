"""`ingestd install-unit`, into a --prefix root: user, /etc/ingestd, units, drop-in."""

from __future__ import annotations

import argparse
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from ingestd.configload import load_config
from ingestd.errors import IngestdError
from ingestd.installunit import add_arguments, install_unit, site_folders

EXECUTABLE = Path(sys.executable).parent / "ingestd"
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="useradd and chown need root")


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="ingestd install-unit")
    add_arguments(parser)
    return install_unit(parser.parse_args(list(argv)))


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


class TestDryRun:
    def test_changes_nothing_and_says_everything(self, tmp_path: Path, capsys) -> None:
        """--dry-run lists the user, folders, files, units and next commands; writes none."""
        assert run("--prefix", str(tmp_path), "--dry-run") == 0
        out = capsys.readouterr().out
        assert tree(tmp_path) == []
        assert "would create user ingestd: useradd --system --user-group" in out
        for path in (
            "/etc/ingestd/ingestd.yaml",
            "/etc/ingestd/symbl_app_secret",
            "/etc/systemd/system/ingestd.service",
            "/etc/systemd/system/ingestd@.service",
            "/etc/systemd/system/ingestd.service.d/10-paths.conf",
        ):
            assert f"would write {path}" in out
        assert "ReadWritePaths: /srv/recordings, /srv/results" in out
        assert "systemctl daemon-reload && systemctl enable --now ingestd\n" in out

    def test_not_root_on_the_real_system(self, monkeypatch) -> None:
        """Without root and without --prefix/--dry-run it refuses in one line."""
        monkeypatch.setattr(os, "geteuid", lambda: 1000)
        with pytest.raises(IngestdError, match="run it as root"):
            run()

    def test_bad_instance_name(self, tmp_path: Path, capsys) -> None:
        """A name that is no file name is a usage error (exit 2), before anything runs."""
        with pytest.raises(SystemExit) as exit_info:
            run("--prefix", str(tmp_path), "--dry-run", "--instance", "../etc")
        assert exit_info.value.code == 2
        assert "instance name" in capsys.readouterr().err


@as_root
class TestInstall:
    def test_fresh_install(self, tmp_path: Path, capsys) -> None:
        """A bare root gets the user, a 0750 /etc/ingestd owned by its group, an example
        config, a root-only credential file, both units and the paths drop-in."""
        assert run("--prefix", str(tmp_path), "--executable", str(EXECUTABLE)) == 0
        out = capsys.readouterr().out
        passwd = (tmp_path / "etc/passwd").read_text()
        assert passwd.startswith("ingestd:") and ":/var/lib/ingestd:/usr/sbin/nologin" in passwd
        gid = int((tmp_path / "etc/group").read_text().split(":")[2])
        etc = tmp_path / "etc/ingestd"
        assert (mode(etc), etc.stat().st_gid) == (0o750, gid)
        config = etc / "ingestd.yaml"
        assert (mode(config), config.stat().st_gid) == (0o640, gid)
        secret = etc / "symbl_app_secret"
        assert (mode(secret), secret.stat().st_gid, secret.read_text()) == (0o600, 0, "")
        units = tmp_path / "etc/systemd/system"
        service = (units / "ingestd.service").read_text()
        assert f"ExecStart={EXECUTABLE} run --config /etc/ingestd/ingestd.yaml\n" in service
        assert (
            f"ExecStart={EXECUTABLE} run --config /etc/ingestd/%i.yaml\n"
            in (units / "ingestd@.service").read_text()
        )
        dropin = (units / "ingestd.service.d/10-paths.conf").read_text()
        assert "[Service]\nReadWritePaths=/srv/recordings\nReadWritePaths=/srv/results\n" in dropin
        assert "systemctl daemon-reload && systemctl enable --now ingestd\n" in out
        result = subprocess.run(
            ["/usr/bin/systemd-analyze", "verify", str(units / "ingestd.service")],
            capture_output=True,
            text=True,
        )
        assert (result.returncode, result.stderr) == (0, "")

    def test_second_run_keeps_site_files_and_updates_units(self, tmp_path: Path, capsys) -> None:
        """Config, secret and drop-in are the site's after the first run; units follow the
        package (an upgrade gets new hardening)."""
        run("--prefix", str(tmp_path), "--executable", str(EXECUTABLE))
        config = tmp_path / "etc/ingestd/ingestd.yaml"
        config.write_text("# edited\n")
        unit = tmp_path / "etc/systemd/system/ingestd.service"
        unit.write_text(unit.read_text().replace("WatchdogSec=60", "WatchdogSec=1"))
        capsys.readouterr()
        assert run("--prefix", str(tmp_path), "--executable", str(EXECUTABLE)) == 0
        out = capsys.readouterr().out
        assert "user ingestd: exists" in out
        assert "/etc/ingestd/ingestd.yaml: exists, kept" in out
        assert "/etc/systemd/system/ingestd.service: updated" in out
        assert "/etc/systemd/system/ingestd@.service: up to date" in out
        assert "10-paths.conf: exists, kept" in out
        assert config.read_text() == "# edited\n"
        assert "WatchdogSec=60" in unit.read_text()

    def test_instance(self, tmp_path: Path, capsys) -> None:
        """--instance sales: its own config, credential, drop-in and unit to enable."""
        run("--prefix", str(tmp_path), "--instance", "sales", "--executable", str(EXECUTABLE))
        out = capsys.readouterr().out
        etc = tmp_path / "etc/ingestd"
        assert sorted(p.name for p in etc.iterdir()) == ["sales.symbl_app_secret", "sales.yaml"]
        text = (etc / "sales.yaml").read_text()
        assert "${STATE_DIRECTORY:-/var/lib/ingestd/sales}/state.db" in text
        assert "/etc/ingestd}/sales.symbl_app_secret" in text
        assert "# metrics:" in text, "instances would fight over one metrics port"
        dropin = tmp_path / "etc/systemd/system/ingestd@sales.service.d/10-paths.conf"
        assert "ReadWritePaths=/srv/recordings-sales\n" in dropin.read_text()
        assert "systemctl enable --now ingestd@sales\n" in out

    def test_examples_of_unit_and_instance_do_not_overlap(self, tmp_path: Path) -> None:
        """ingestd.service watches /srv/recordings recursively: an instance's example folders
        must lie beside it, not inside, or both daemons would submit the same files."""
        run("--prefix", str(tmp_path), "--executable", str(EXECUTABLE))
        run("--prefix", str(tmp_path), "--instance", "sales", "--executable", str(EXECUTABLE))
        etc = tmp_path / "etc/ingestd"
        main = site_folders((etc / "ingestd.yaml").read_text(), etc)
        sales = site_folders((etc / "sales.yaml").read_text(), etc)
        assert main and sales
        for a in main:
            for b in sales:
                assert not Path(a).is_relative_to(b) and not Path(b).is_relative_to(a), (a, b)


class TestExampleConfig:
    @as_root
    def test_loads_with_the_unit_environment(self, tmp_path: Path, monkeypatch) -> None:
        """Under systemd ($CREDENTIALS_DIRECTORY, $STATE_DIRECTORY) the example config loads
        with the secret from the credential file."""
        run("--prefix", str(tmp_path), "--executable", str(EXECUTABLE))
        etc = tmp_path / "etc/ingestd"
        (etc / "symbl_app_secret").write_text("s3cret\n")
        monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(etc))
        monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
        config = load_config(etc / "ingestd.yaml")
        assert config.symbl["app_secret"].reveal() == "s3cret"
        assert config.state_path == tmp_path / "state" / "state.db"
        assert config.metrics_listen == "127.0.0.1:9464"
        assert config.log_format == "auto"

    @as_root
    def test_empty_secret_exits_78(self, tmp_path: Path) -> None:
        """Started before the secret is filled in, the daemon stops with 78, which the unit's
        RestartPreventExitStatus= keeps from crash-looping."""
        run("--prefix", str(tmp_path), "--executable", str(EXECUTABLE))
        etc = tmp_path / "etc/ingestd"
        env = {
            **os.environ,
            "CREDENTIALS_DIRECTORY": str(etc),
            "STATE_DIRECTORY": str(tmp_path / "state"),
        }
        result = subprocess.run(
            [str(EXECUTABLE), "run", "--config", str(etc / "ingestd.yaml")],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert result.returncode == 78, result.stderr
        assert "app_secret" in result.stderr

    @as_root
    def test_empty_secret_is_fine_for_the_sandbox(self, tmp_path: Path) -> None:
        """The README's first try: the written config with `base_url: sandbox` and the empty
        credential file passes `ingestd check`. With the real API the same file is refused,
        and `check` does not say "ok"."""
        run("--prefix", str(tmp_path), "--executable", str(EXECUTABLE))
        etc = tmp_path / "etc/ingestd"
        config = etc / "ingestd.yaml"
        for folder in ("recordings", "results"):
            (tmp_path / folder).mkdir()
        text = (
            config.read_text()
            .replace("/srv/recordings", str(tmp_path / "recordings"))
            .replace("/srv/results", str(tmp_path / "results"))
            .replace("metrics:\n  listen:", "# metrics:\n#  listen:")
        )
        env = {
            **os.environ,
            "CREDENTIALS_DIRECTORY": str(etc),
            "STATE_DIRECTORY": str(tmp_path / "state"),
        }

        def check(base_url: str) -> subprocess.CompletedProcess[str]:
            config.write_text(text.replace("https://api.symbl.ai", base_url))
            return subprocess.run(
                [str(EXECUTABLE), "check", "--config", str(config)],
                capture_output=True,
                text=True,
                env=env,
                timeout=60,
            )

        sandbox = check("sandbox")
        assert sandbox.returncode == 0, sandbox.stderr
        assert "credentials accepted" in sandbox.stdout
        real = check("https://api.symbl.ai")
        assert real.returncode == 78, real.stderr
        assert "symbl.app_secret: expected a non-empty string" in real.stderr
        assert "check: ok" not in real.stdout


class TestSiteFolders:
    def test_paths_from_watches_and_files_sinks(self, monkeypatch) -> None:
        """Relative to the config, ${VAR:-default} resolved, unknown ${VAR} skipped, no dups."""
        monkeypatch.delenv("INBOX", raising=False)
        monkeypatch.setenv("OUT", "/data/out")
        text = """
watch:
  - {path: in}
  - {path: "${INBOX:-/srv/in}"}
  - {path: "${NOPE}/x"}
sinks:
  - {type: files, path: "${OUT}"}
  - {type: slack, webhook_url: x}
  - {type: files, path: /srv/in}
"""
        expected = ["/etc/ingestd/in", "/srv/in", "/data/out"]
        assert site_folders(text, Path("/etc/ingestd")) == expected

    @as_root
    def test_home_folder_relaxes_protect_home(self, tmp_path: Path) -> None:
        """A watched folder under /home gets ProtectHome=read-only in the drop-in."""
        etc = tmp_path / "etc/ingestd"
        etc.mkdir(parents=True)
        (etc / "ingestd.yaml").write_text(
            "watch: [{path: /home/alice/calls}]\nsinks: [{type: files, path: /srv/out}]\n"
        )
        run("--prefix", str(tmp_path), "--executable", str(EXECUTABLE))
        dropin = (tmp_path / "etc/systemd/system/ingestd.service.d/10-paths.conf").read_text()
        assert "ReadWritePaths=/home/alice/calls\n" in dropin
        assert "ProtectHome=read-only\n" in dropin
