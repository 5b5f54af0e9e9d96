"""``ingestd install-unit``: the system user, /etc/ingestd and the systemd units, as root.

Steps, each printed as it is done (with ``--dry-run``, as it would be done):

1. the ``ingestd`` system user and group (``useradd --system``), unless they exist;
2. /etc/ingestd/ (root:ingestd, 0750) with an example config and an empty credential file
   (root, 0600: systemd's LoadCredential= hands it to the daemon), unless they exist;
3. ingestd.service and ingestd@.service in /etc/systemd/system/, ExecStart pointing at this
   installation's ``ingestd``; overwritten on every run, because site settings belong in
   drop-ins (that is how an upgrade picks up new hardening);
4. a drop-in with ReadWritePaths= for the config's watched and result folders, unless the
   unit already has one (it is then the site's).

It never runs systemctl: it prints the commands that come next. ``--prefix`` roots every
path (tests, image builds); ``--instance NAME`` sets up ``ingestd@NAME`` instead.
"""

from __future__ import annotations

import argparse
import grp
import os
import pwd
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ingestd.errors import IngestdError

USER = "ingestd"
UNITS = ("ingestd.service", "ingestd@.service")
PACKAGED_EXEC = "/opt/ingestd/bin/ingestd"  # what the shipped units say
_INSTANCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_HIDDEN = ("/home", "/root", "/run/user")  # ProtectHome=yes hides these
_ENV = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")

EXAMPLE_CONFIG = """\
# {unit}: written by `ingestd install-unit`. Edit, then check it with
#   ingestd check --config {config}
# The daemon may write only its state directory and the folders listed in the unit's
# drop-in {dropin}: keep it in step with watch: and sinks: below.
symbl:
  base_url: https://api.symbl.ai    # or sandbox, to try ingestd without an account
  app_id: YOUR_SYMBL_APP_ID
  # the secret is a file, handed over by systemd (LoadCredential=); the default keeps
  # `ingestd check` working from a root shell
  app_secret_file: ${{CREDENTIALS_DIRECTORY:-/etc/ingestd}}/{secret}
  max_concurrent_jobs: 5            # your account's concurrent-job limit

state:
  url: sqlite:///${{STATE_DIRECTORY:-{state_dir}}}/state.db

watch:
  - name: recordings
    path: /srv/recordings{suffix}
    settle_seconds: 5
    conversation: {{by: folder}}     # a sub-folder is one conversation, in name order

sinks:
  - {{type: files, path: /srv/results{suffix}, formats: [json, markdown]}}

{metrics_comment}metrics:
{metrics_comment}  listen: 127.0.0.1:9464           # /metrics and /health; one port per instance

logging:
  level: info
  format: auto                      # JSON lines under systemd, for journald
"""


@dataclass(frozen=True)
class Target:
    """Where everything goes, for ingestd.service or one ingestd@NAME instance."""

    root: Path
    instance: str | None

    @property
    def unit(self) -> str:
        return f"ingestd@{self.instance}.service" if self.instance else "ingestd.service"

    @property
    def name(self) -> str:
        return self.instance or "ingestd"

    def path(self, absolute: str) -> Path:
        """`absolute` below the prefix root."""
        return self.root / absolute.lstrip("/")

    @property
    def etc(self) -> str:
        return "/etc/ingestd"

    @property
    def config(self) -> str:
        return f"{self.etc}/{self.name}.yaml"

    @property
    def secret(self) -> str:
        name = f"{self.instance}.symbl_app_secret" if self.instance else "symbl_app_secret"
        return f"{self.etc}/{name}"

    @property
    def state_dir(self) -> str:
        return f"/var/lib/ingestd/{self.instance}" if self.instance else "/var/lib/ingestd"

    @property
    def dropin(self) -> str:
        return f"/etc/systemd/system/{self.unit}.d/10-paths.conf"


class _Run:
    """Does a step, or with dry_run only says what it would do."""

    def __init__(self, dry_run: bool) -> None:
        self.dry_run = dry_run
        self.gid: int | None = None

    def say(self, done: str, would: str | None = None) -> None:
        print(f"  {would or done}" if self.dry_run else f"  {done}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``ingestd install-unit``."""
    parser.add_argument("--dry-run", action="store_true", help="print the steps, change nothing")
    parser.add_argument("--prefix", type=Path, default=Path("/"), help="root for every path")
    parser.add_argument(
        "--instance", type=_instance, help="set up ingestd@NAME (config /etc/ingestd/NAME.yaml)"
    )
    parser.add_argument(
        "--executable", type=Path, help="the ingestd to run (default: this installation's)"
    )
    parser.add_argument("--units", type=Path, help="folder with ingestd.service (default: found)")


def _instance(name: str) -> str:
    if not _INSTANCE.fullmatch(name):
        raise argparse.ArgumentTypeError(
            f"{name!r}: an instance name is letters, digits, '.', '_' and '-'"
        )
    return name


def install_unit(args: argparse.Namespace) -> int:
    """Run the steps in the module docstring; return the exit code."""
    dry_run = bool(getattr(args, "dry_run", False))
    root = Path(getattr(args, "prefix", None) or "/")
    instance = getattr(args, "instance", None)
    if instance is not None:
        _instance(instance)
    if not dry_run and root == Path("/") and os.geteuid() != 0:
        raise IngestdError(
            "install-unit creates a user and writes /etc: run it as root "
            "(or see what it would do with --dry-run)"
        )
    target = Target(root, instance)
    executable = _executable(getattr(args, "executable", None))
    units = _units_dir(getattr(args, "units", None))
    run = _Run(dry_run)

    where = "" if root == Path("/") else f" under {root}"
    print(f"{'would install' if dry_run else 'installing'} {target.unit}{where}:")
    _ensure_user(run, target)
    _ensure_dir(run, target, target.etc, 0o750)
    text = EXAMPLE_CONFIG.format(
        unit=target.unit,
        config=target.config,
        dropin=target.dropin,
        secret=Path(target.secret).name,
        state_dir=target.state_dir,
        # siblings, not sub-folders: ingestd.service's recursive watch of /srv/recordings
        # must not pick up an instance's files too
        suffix=f"-{instance}" if instance else "",
        metrics_comment="# " if instance else "",
    )
    config_file = target.path(target.config)
    config_text = config_file.read_text() if config_file.exists() else text
    _ensure_file(run, target, target.config, text, 0o640, group=True)
    _ensure_file(run, target, target.secret, "", 0o600, group=False)
    for unit in UNITS:
        _install_unit_file(run, target, units / unit, executable)
    _write_dropin(run, target, config_text)
    _next_steps(target, dry_run)
    return 0


# -- steps ---------------------------------------------------------------------------------


def _ensure_user(run: _Run, target: Target) -> None:
    run.gid = _group_id(target.root, USER)
    if _user_exists(target.root, USER):
        run.say(f"user {USER}: exists")
        return
    command = [
        "useradd",
        "--system",
        "--user-group",
        "--no-create-home",
        "--home-dir",
        "/var/lib/ingestd",
        "--shell",
        "/usr/sbin/nologin",
        "--comment",
        "ingestd media ingestion daemon",
    ]
    if target.root != Path("/"):
        command += ["--prefix", str(target.root)]
    command.append(USER)
    if run.dry_run:
        run.say("", f"would create user {USER}: {shlex.join(command)}")
        return
    target.path("/etc").mkdir(parents=True, exist_ok=True)  # a bare --prefix root
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    result = subprocess.run([useradd, *command[1:]], capture_output=True, text=True)
    if result.returncode != 0:
        raise IngestdError(
            f"{shlex.join(command)} failed ({result.returncode}): {result.stderr.strip()}; "
            f"create the user by hand (README: Operations) and run install-unit again"
        )
    run.gid = _group_id(target.root, USER)
    run.say(f"user {USER}: created (system user, group {USER}, gid {run.gid})")


def _ensure_dir(run: _Run, target: Target, absolute: str, mode: int) -> None:
    path = target.path(absolute)
    if path.is_dir():
        run.say(f"{absolute}/: exists")
        return
    run.say(f"{absolute}/: created (root:{USER} {mode:o})", f"would create {absolute}/")
    if not run.dry_run:
        path.mkdir(parents=True, mode=mode)
        _own(run, path, mode, group=True)


def _ensure_file(
    run: _Run, target: Target, absolute: str, text: str, mode: int, *, group: bool
) -> None:
    path = target.path(absolute)
    if path.exists():
        run.say(f"{absolute}: exists, kept")
        return
    owner = f"root:{USER}" if group else "root"
    run.say(f"{absolute}: written ({owner} {mode:o})", f"would write {absolute}")
    if not run.dry_run:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        _own(run, path, mode, group=group)


def render_unit(text: str, executable: Path) -> str:
    """The shipped unit with ExecStart pointing at `executable`."""
    exe = str(executable)
    if re.search(r"\s", exe):
        exe = f'"{exe}"'
    return text.replace(f"ExecStart={PACKAGED_EXEC} ", f"ExecStart={exe} ")


def _install_unit_file(run: _Run, target: Target, source: Path, executable: Path) -> None:
    absolute = f"/etc/systemd/system/{source.name}"
    path = target.path(absolute)
    text = render_unit(source.read_text(), executable)
    old = path.read_text() if path.exists() else None
    if old == text:
        run.say(f"{absolute}: up to date")
        return
    verb = "installed" if old is None else "updated"
    run.say(f"{absolute}: {verb} (ExecStart={executable})", f"would write {absolute}")
    if not run.dry_run:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(0o644)


def _write_dropin(run: _Run, target: Target, config_text: str) -> None:
    path = target.path(target.dropin)
    if path.exists():
        run.say(f"{target.dropin}: exists, kept")
        return
    folders = site_folders(config_text, base=Path(target.config).parent)
    lines = [
        f"# Written by `ingestd install-unit` from {target.config}; the site's to edit now",
        f"# (systemctl edit {target.unit}). ProtectSystem=strict leaves every other path",
        "# read-only for the daemon. Each folder must exist when the unit starts, or it fails",
        "# with status 226/NAMESPACE.",
        "[Service]",
        *(f"ReadWritePaths={f}" for f in folders),
    ]
    if any(f == h or f.startswith(h + "/") for f in folders for h in _HIDDEN):
        lines.append("# a folder under /home or /root: ProtectHome=yes would hide it")
        lines.append("ProtectHome=read-only")
    listed = ", ".join(folders) or "none"
    run.say(
        f"{target.dropin}: written (ReadWritePaths: {listed})",
        f"would write {target.dropin} (ReadWritePaths: {listed})",
    )
    for folder in folders:
        if not target.path(folder).is_dir():
            print(f"  note: {folder} does not exist yet; create it before starting {target.unit}")
    if not run.dry_run:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n")
        path.chmod(0o644)


def _next_steps(target: Target, dry_run: bool) -> None:
    print("next:" if not dry_run else "then:")
    print(f"  1. edit {target.config}: symbl.app_id, watch folders, sinks")
    print(f"  2. put the Symbl app secret in {target.secret} (one line; it stays root-only)")
    print(
        f"  3. let group {USER} read the watched folders and write the result folders "
        f"(chgrp/chmod or ACLs)"
    )
    print(f"  4. ingestd check --config {target.config}")
    unit = target.unit.removesuffix(".service")
    print(f"  5. systemctl daemon-reload && systemctl enable --now {unit}")


# -- helpers -------------------------------------------------------------------------------


def site_folders(config_text: str, base: Path) -> list[str]:
    """Watched folders and files-sink folders named in a config, as absolute paths.

    Read from the raw YAML (the service's credentials and environment are not there yet):
    ``${VAR:-default}`` takes the variable or its default, and a path still holding ``${`` is
    skipped. Relative paths are relative to `base`, the config's folder.
    """
    try:
        data = yaml.safe_load(config_text) or {}
    except yaml.YAMLError:
        return []
    if not isinstance(data, dict):
        return []
    raw: list[Any] = [w.get("path") for w in data.get("watch") or [] if isinstance(w, dict)]
    raw += [
        s.get("path")
        for s in data.get("sinks") or []
        if isinstance(s, dict) and s.get("type") == "files"
    ]
    folders: list[str] = []
    for value in raw:
        if not isinstance(value, str):
            continue
        value = _ENV.sub(lambda m: os.environ.get(m.group(1), m.group(2) or "${"), value)
        if "${" in value:
            continue
        folder = os.path.normpath(base / Path(value).expanduser())
        if folder not in folders:
            folders.append(folder)
    return folders


def _executable(given: Path | None) -> Path:
    if given:
        return given
    beside = Path(sys.executable).parent / "ingestd"  # the venv's bin/, symlinks kept
    found = beside if beside.exists() else shutil.which("ingestd")
    if not found:
        raise IngestdError("cannot find the ingestd executable; pass --executable PATH")
    path = Path(found).absolute()
    if any(str(path).startswith(h + "/") for h in (*_HIDDEN, "/tmp")):
        print(
            f"warning: {path} is hidden from the service (ProtectHome=, PrivateTmp=); "
            f"install ingestd into /opt/ingestd (README: Operations)"
        )
    return path


def _units_dir(given: Path | None) -> Path:
    candidates = [given] if given else []
    packaged = resources.files("ingestd").joinpath("units")
    candidates.append(Path(str(packaged)))
    candidates.append(Path(__file__).resolve().parent.parent / "systemd")  # a source checkout
    for folder in candidates:
        if folder and all((folder / unit).is_file() for unit in UNITS):
            return folder
    raise IngestdError(
        f"cannot find the unit files ({', '.join(UNITS)}); pass --units DIR, the systemd/ "
        f"folder of the ingestd source"
    )


def _user_exists(root: Path, user: str) -> bool:
    if root == Path("/"):
        try:
            pwd.getpwnam(user)
            return True
        except KeyError:
            return False
    return _field(root / "etc/passwd", user, 0) is not None


def _group_id(root: Path, group: str) -> int | None:
    if root == Path("/"):
        try:
            return grp.getgrnam(group).gr_gid
        except KeyError:
            return None
    gid = _field(root / "etc/group", group, 2)
    return int(gid) if gid is not None else None


def _field(table: Path, name: str, index: int) -> str | None:
    """Column `index` of `name`'s line in a passwd-style file."""
    if not table.exists():
        return None
    for line in table.read_text().splitlines():
        parts = line.split(":")
        if parts[0] == name and len(parts) > index:
            return parts[index]
    return None


def _own(run: _Run, path: Path, mode: int, *, group: bool) -> None:
    """root:ingestd (or root:root) and `mode`, when running as root."""
    if os.geteuid() == 0:
        os.chown(path, 0, run.gid if group and run.gid is not None else 0)
    path.chmod(mode)
