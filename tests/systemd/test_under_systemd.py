"""ingestd.service under a real systemd (252, Debian 12, booted in systemd-nspawn).

Installed the way the README tells a user: a wheel built on the host, installed offline into
/opt/ingestd, then `ingestd install-unit`, the config in /etc/ingestd. The API is the Symbl
sandbox on the host's loopback (the container shares the host's network), which counts every
upload, so "nothing lost or doubled" is counted where the daemon cannot fake it. Recordings
are dropped into /srv, a host folder bind-mounted into the container.

The tests share one boot and run in file order; each brings the unit to the state it needs.
"""

from __future__ import annotations

import json
import os
import re
import time
from datetime import UTC, datetime
from itertools import count
from pathlib import Path
from typing import Any

import pytest

from ingestd import mediagen
from ingestd.testing import sha256_of, wait_for
from tests.systemd.conftest import FIGURES, LIMITS, TIMINGS
from tests.systemd.container import Container

UNIT = "ingestd"
CONFIG = "/etc/ingestd/ingestd.yaml"
INGESTD = "/opt/ingestd/bin/ingestd"
MAX_EXPOSURE = 2.0
_frequencies = count(300, 41)


# -- the machine ------------------------------------------------------------------------------


def config_text(api: Any, name: str = "ingestd", watch: str = "/srv/recordings", **extra) -> str:
    """A config for the sandbox on the host, the secret through LoadCredential."""
    secret = "symbl_app_secret" if name == "ingestd" else f"{name}.symbl_app_secret"
    state = "/var/lib/ingestd" if name == "ingestd" else f"/var/lib/ingestd/{name}"
    results = watch.replace("recordings", "results")
    extra_watches = "".join(
        f"  - {{name: {w.rsplit('/', 1)[1]}, path: {w}, settle_seconds: 0.3}}\n"
        for w in extra.get("more_watches", ())
    )
    return f"""\
symbl:
  base_url: {api.url}
  app_id: {api.options.app_id}
  app_secret_file: ${{CREDENTIALS_DIRECTORY:-/etc/ingestd}}/{secret}
  max_concurrent_jobs: 5
  poll_initial_seconds: 0.1
  poll_max_seconds: 0.5
state:
  url: sqlite:///${{STATE_DIRECTORY:-{state}}}/state.db
watch:
  - {{name: {watch.rsplit("/", 1)[1]}, path: {watch}, settle_seconds: 0.3}}
{extra_watches}sinks:
  - {{type: files, path: {results}, formats: [json]}}
pipeline:
  shutdown_grace_seconds: {extra.get("grace", 2)}
logging:
  level: info
  format: auto
"""


def make_folders(container: Container, *folders: str) -> None:
    """Folders the ingestd group reads and writes (README: Install, step 3)."""
    for folder in folders:
        container.sh(f"mkdir -p {folder} && chgrp ingestd {folder} && chmod 2770 {folder}")


def drop(share: Path, folder: str, name: str, seconds: float = 1) -> str:
    """A fresh recording moved into /srv/<folder> from the host; returns its sha256."""
    staging = share / "staging"
    staging.mkdir(exist_ok=True)
    made = mediagen.make_audio(staging / name, seconds=seconds, frequency_hz=next(_frequencies))
    made.chmod(0o644)
    digest = sha256_of(made)
    os.replace(made, share / folder / name)
    return digest


def states(container: Container, state_dir: str = "/var/lib/ingestd") -> dict[str, str]:
    """relpath -> state, read from the daemon's database by root inside the container."""
    script = (
        "import json, os, sqlite3, sys\n"
        "db = sys.argv[1]\n"
        "rows = []\n"
        "if os.path.exists(db):\n"
        "    conn = sqlite3.connect(db, timeout=10)\n"
        "    rows = conn.execute('SELECT relpath, state FROM recordings').fetchall()\n"
        "print(json.dumps(dict(rows)))\n"
    )
    out = container.run("python3", "-c", script, f"{state_dir}/state.db")
    return json.loads(out)


def wait_done(container: Container, names: list[str], state_dir: str = "/var/lib/ingestd") -> None:
    def all_done() -> bool:
        now = states(container, state_dir)
        return all(now.get(n) == "done" for n in names)

    try:
        wait_for(all_done, 60, f"{names} done")
    except AssertionError:
        raise AssertionError(
            f"states: {states(container, state_dir)}\n{journal_tail(container)}"
        ) from None


def created(api: Any, digest: str) -> int:
    """Uploads of this content that created a job at the API."""
    return sum(1 for s in api.submissions() if s["created"] and s.get("sha256") == digest)


def journal(container: Container, unit: str = UNIT, since: str | None = None) -> list[dict]:
    """The unit's journal entries, `journalctl -o json`."""
    args = f"journalctl -u {unit} -o json --no-pager" + (f" --since '{since}'" if since else "")
    out = container.sh(args).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def events(entries: list[dict]) -> list[dict]:
    """Our own lines: MESSAGE holds one JSON object per log event."""
    found = []
    for entry in entries:
        message = entry.get("MESSAGE")
        if isinstance(message, str) and message.startswith("{"):
            found.append({**json.loads(message), "_PRIORITY": entry.get("PRIORITY")})
    return found


def _systemd_time(text: str) -> datetime:
    """``Mon 2026-12-07 05:40:01.123456 UTC`` (systemctl show --timestamp=us+utc)."""
    return datetime.strptime(text, "%a %Y-%m-%d %H:%M:%S.%f UTC").replace(tzinfo=UTC)


def journal_tail(container: Container, unit: str = UNIT) -> str:
    return container.sh(f"journalctl -u {unit} --no-pager -n 30", check=False).stdout


def active(container: Container, unit: str = UNIT) -> dict[str, str]:
    return container.show(unit, "ActiveState", "SubState", "MainPID", "NRestarts", "Result")


def start_clean(container: Container, api: Any) -> None:
    """The main unit running with the test config, whatever an earlier test left."""
    container.write(CONFIG, config_text(api), 0o640)
    container.sh(f"chgrp ingestd {CONFIG}; systemctl reset-failed {UNIT} 2>/dev/null; true")
    container.run("systemctl", "restart", UNIT)
    assert active(container)["SubState"] == "running", journal_tail(container)


@pytest.fixture(scope="module")
def installed(container: Container, api: Any) -> dict[str, str]:
    """README "Install": venv, offline pip install of the wheel, install-unit; the secret."""
    started = time.monotonic()
    out: dict[str, str] = {}
    out["pip"] = container.sh(
        "python3 -m venv /opt/ingestd && "
        "/opt/ingestd/bin/pip install --quiet --no-index --find-links /mnt ingestd",
        timeout=600,
    ).stdout
    out["dry_run"] = container.run(INGESTD, "install-unit", "--dry-run")
    out["install"] = container.run(INGESTD, "install-unit")
    # The README's first try: the sandbox, and the credential file left empty.
    container.sh(f"sed -i 's|base_url: https://api.symbl.ai |base_url: sandbox |' {CONFIG}")
    make_folders(container, "/srv/recordings", "/srv/results")
    out["check_sandbox"] = container.run(INGESTD, "check", "--config", CONFIG)
    container.write("/etc/ingestd/symbl_app_secret", api.options.app_secret + "\n", 0o600)
    container.run("systemctl", "daemon-reload")
    TIMINGS["install (venv, pip, install-unit)"] = time.monotonic() - started
    return out


# -- the tests ------------------------------------------------------------------------------


def test_install_as_the_readme_says(container: Container, installed: dict[str, str]) -> None:
    """The wheel installs offline into /opt/ingestd; install-unit writes user, config,
    credential, both units and the paths drop-in; the sandbox config with the empty
    credential file passes `ingestd check`."""
    assert "would write /etc/systemd/system/ingestd.service" in installed["dry_run"]
    assert "user ingestd: created" in installed["install"]
    assert "/etc/systemd/system/ingestd.service: installed" in installed["install"]
    assert "credentials accepted" in installed["check_sandbox"]
    for unit in ("ingestd.service", "ingestd@.service"):
        text = container.path(f"/etc/systemd/system/{unit}").read_text()
        assert f"ExecStart={INGESTD} run --config" in text
    dropin = container.path("/etc/systemd/system/ingestd.service.d/10-paths.conf").read_text()
    assert "ReadWritePaths=/srv/recordings\nReadWritePaths=/srv/results\n" in dropin
    verify = container.sh("systemd-analyze verify ingestd.service ingestd@x.service", check=False)
    assert verify.returncode == 0, verify.stderr


def test_start_ready_status_results_journal(
    container: Container, api: Any, installed: dict, share: Path
) -> None:
    """`systemctl start` returns once READY=1 came (after the watcher and the rescan),
    `systemctl status` shows our STATUS= line and keeps it current, a dropped file gets its
    results, and the journal holds our JSON fields with a matching PRIORITY."""
    start_clean(container, api)
    assert container.show(UNIT, "Type")["Type"] == "notify"
    # The daemon logs rescan_finished (its own clock, in the line) just before READY=1.
    # Under Type=simple the unit would be active at the fork, long before that.
    out = container.run(
        "systemctl",
        "show",
        "--timestamp=us+utc",
        "--property=ExecMainStartTimestamp",
        "--property=ActiveEnterTimestamp",
        UNIT,
    )
    unit = dict(line.split("=", 1) for line in out.splitlines())
    forked = _systemd_time(unit["ExecMainStartTimestamp"])
    became_active = _systemd_time(unit["ActiveEnterTimestamp"])
    rescans = [e for e in events(journal(container)) if e["event"] == "rescan_finished"]
    rescanned = datetime.fromisoformat(rescans[-1]["timestamp"].replace("Z", "+00:00"))
    assert forked < rescanned <= became_active, (forked, rescanned, became_active)

    status = container.sh(f"systemctl status {UNIT} --no-pager", check=False).stdout
    assert re.search(r'Status: "\d+ in progress, \d+ done, \d+ failed, \d+ settling"', status)

    done_before = len([s for s in states(container).values() if s == "done"])
    digest = drop(share, "recordings", "first.wav")
    wait_done(container, ["first.wav"])
    assert created(api, digest) == 1
    results = [p for p in (share / "results").rglob("insights.json") if "first" in str(p)]
    assert len(results) == 1, sorted((share / "results").rglob("*"))
    assert results[0].stat().st_mode & 0o027 == 0, "UMask=0027: the group reads, others not"
    state = container.run("stat", "-c", "%a %U", "/var/lib/ingestd").split()
    assert state == ["700", "ingestd"], state  # StateDirectory=, StateDirectoryMode=0700

    def status_counts_it() -> bool:
        text = container.show(UNIT, "StatusText")["StatusText"]
        return f"{done_before + 1} done" in text

    wait_for(status_counts_it, 5, "STATUS= counting the new recording, before a watchdog ping")

    mine = [e for e in events(journal(container)) if e.get("path") == "first.wav"]
    finished = [e for e in mine if e["event"] == "recording_finished"]
    assert len(finished) == 1, mine
    assert {"recording_id", "watch", "path", "conversation_id", "level", "timestamp"} <= set(
        finished[0]
    )
    assert finished[0]["_PRIORITY"] == "6"  # info, from the <6> prefix journald reads


def test_kill_9_restarts_and_nothing_is_lost_or_doubled(
    container: Container, api: Any, installed: dict, share: Path
) -> None:
    """SIGKILL of the main process mid-work: Restart=on-failure brings it back, and every
    recording ends done with exactly one upload that created a job."""
    start_clean(container, api)
    api.set_options({"job_seconds": 2.0})
    try:
        digests = {f"kill-{i}.wav": drop(share, "recordings", f"kill-{i}.wav") for i in range(3)}
        wait_for(lambda: any(created(api, d) for d in digests.values()), 30, "a job in flight")
        before = active(container)
        container.sh(f"kill -9 {before['MainPID']}")

        def restarted() -> bool:
            now = active(container)
            return (
                now["SubState"] == "running"
                and now["MainPID"] not in ("0", before["MainPID"])
                and int(now["NRestarts"]) == int(before["NRestarts"]) + 1
            )

        wait_for(restarted, 30, "systemd restarting the killed daemon")
        wait_done(container, list(digests))
    finally:
        api.set_options({"job_seconds": 0.5})
    assert {name: created(api, d) for name, d in digests.items()} == dict.fromkeys(digests, 1)
    for name in digests:
        stem = name.removesuffix(".wav")
        found = [p for p in (share / "results").rglob("insights.json") if f"/{stem}-" in str(p)]
        assert len(found) == 1, (name, found)


def test_watchdog_restarts_a_hung_daemon(container: Container, api: Any, installed: dict) -> None:
    """A stopped event loop (SIGSTOP) sends no WATCHDOG=1: with WatchdogSec=2 in a drop-in,
    systemd kills the daemon and starts it again."""
    dropin = "/etc/systemd/system/ingestd.service.d/90-test-watchdog.conf"
    container.write(dropin, "[Service]\nWatchdogSec=2\n")
    try:
        container.run("systemctl", "daemon-reload")
        start_clean(container, api)
        before = active(container)
        container.sh(f"kill -STOP {before['MainPID']}")

        def restarted() -> bool:
            now = active(container)
            return now["SubState"] == "running" and now["MainPID"] not in (
                "0",
                before["MainPID"],
            )

        wait_for(restarted, 30, "the watchdog restarting the hung daemon")
        log = container.sh(f"journalctl -u {UNIT} --no-pager -o cat", check=False).stdout
        assert "Watchdog timeout (limit 2s)!" in log
        assert "Failed with result 'watchdog'" in log
    finally:
        container.path(dropin).unlink(missing_ok=True)
        container.run("systemctl", "daemon-reload")


def test_reload_applies_a_changed_config(
    container: Container, api: Any, installed: dict, share: Path
) -> None:
    """`systemctl reload` (ExecReload: SIGHUP through sh's built-in kill, no procps needed)
    adds a watch without a restart: same PID, and the new folder's file gets done."""
    start_clean(container, api)
    make_folders(container, "/srv/more")
    before = active(container)
    container.write(CONFIG, config_text(api, more_watches=["/srv/more"]), 0o640)
    container.run("systemctl", "reload", UNIT)
    after = active(container)
    assert (after["MainPID"], after["NRestarts"]) == (before["MainPID"], before["NRestarts"])
    wait_for(
        lambda: any(
            e["event"] == "config_reloaded" and "more" in e.get("watches_started", [])
            for e in events(journal(container))
        ),
        10,
        "config_reloaded starting the watch 'more'",
    )
    digest = drop(share, "more", "reloaded.wav")
    wait_done(container, ["reloaded.wav"])
    assert created(api, digest) == 1


def test_broken_config_exits_78_without_a_restart_loop(
    container: Container, api: Any, installed: dict
) -> None:
    """A bad config: exit 78, the unit goes straight to failed (RestartPreventExitStatus=78,
    no auto-restart), and `systemctl status` shows the problem."""
    start_clean(container, api)
    before = active(container)
    broken = config_text(api).replace("settle_seconds: 0.3", "settle_seconds: soon")
    container.write(CONFIG, broken, 0o640)
    result = container.sh(f"systemctl restart {UNIT}", check=False)
    assert result.returncode != 0
    unit = container.show(UNIT, "ActiveState", "SubState", "ExecMainStatus", "NRestarts")
    assert unit["ExecMainStatus"] == "78"
    # failed at once: a restartable failure would be "activating (auto-restart)" here
    assert (unit["ActiveState"], unit["SubState"]) == ("failed", "failed"), unit
    assert unit["NRestarts"] == before["NRestarts"]
    status = container.sh(f"systemctl status {UNIT} --no-pager -n 20", check=False).stdout
    assert "status=78" in status
    assert "settle_seconds" in status and "expected a number" in status, status
    start_clean(container, api)


@pytest.mark.slow(seconds=35)
def test_stop_during_an_upload_then_resume_without_a_repeat(
    container: Container, api: Any, installed: dict, share: Path
) -> None:
    """`systemctl stop` while a large upload is held up at the API: the daemon exits by
    itself well within TimeoutStopSec (no SIGKILL), and after a start the recording is
    uploaded once."""
    start_clean(container, api)
    api.faults.arm({"kind": "latency", "seconds": 8, "times": 1, "route": "submit"})
    digest = drop(share, "recordings", "long.wav", seconds=900)  # ~29 MB: outlasts the buffers
    wait_for(lambda: states(container).get("long.wav") == "submitting", 60, "the upload")
    timeout_stop = container.show(UNIT, "TimeoutStopUSec")["TimeoutStopUSec"]
    began = time.monotonic()
    container.run("systemctl", "stop", UNIT)
    took = time.monotonic() - began
    unit = container.show(UNIT, "Result", "ExecMainStatus", "ActiveState")
    assert unit == {"Result": "success", "ExecMainStatus": "0", "ActiveState": "inactive"}, unit
    assert took < 45, (took, timeout_stop)
    container.run("systemctl", "start", UNIT)
    wait_done(container, ["long.wav"])
    assert created(api, digest) == 1


def _as_daemon(container: Container, script: str) -> str:
    """Run `script` in the daemon's namespaces as its user (not under its seccomp filter)."""
    pid = container.main_pid(UNIT)
    uid = container.run("id", "-u", "ingestd").strip()
    gid = container.run("id", "-g", "ingestd").strip()
    quoted = script.replace("'", "'\\''")
    return container.sh(
        f"nsenter -t {pid} -a -S {uid} -G {gid} /bin/sh -c '{quoted}' 2>&1", check=False
    ).stdout


def test_hardening_holds(container: Container, api: Any, installed: dict) -> None:
    """The sandbox of the unit, seen from inside the running daemon's namespaces and from
    /proc: read-only system, writable state and ReadWritePaths, no /home, the secret only
    through LoadCredential, no capabilities, seccomp on, exposure <= 2.0. What nspawn keeps
    from taking effect is reported, not passed over."""
    container.sh("mkdir -p /home/alice && echo private > /home/alice/notes.txt")
    start_clean(container, api)
    pid = container.main_pid(UNIT)
    status = container.path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    uid = container.run("id", "-u", "ingestd").strip()
    assert fields["Uid"].split()[0] == uid
    assert fields["CapEff"] == fields["CapBnd"] == fields["CapPrm"] == "0000000000000000"
    assert fields["NoNewPrivs"] == "1"
    assert fields["Seccomp"] == "2"  # SystemCallFilter=, RestrictAddressFamilies=, W^X, ...

    out = _as_daemon(
        container,
        "touch /etc/probe; touch /usr/probe; touch /opt/ingestd/probe; "
        "touch /var/lib/ingestd/probe && echo STATE-WRITABLE; "
        "touch /srv/results/probe && echo RESULTS-WRITABLE; rm -f /srv/results/probe; "
        "ls /home; cat /home/alice/notes.txt; "
        "cat /etc/ingestd/symbl_app_secret; "
        'cat "/run/credentials/ingestd.service/symbl_app_secret" && echo; '
        "cat /proc/meminfo",
    )
    assert "touch: cannot touch '/etc/probe': Read-only file system" in out  # ProtectSystem
    assert "touch: cannot touch '/usr/probe': Read-only file system" in out
    assert "touch: cannot touch '/opt/ingestd/probe': Read-only file system" in out
    assert "STATE-WRITABLE" in out and "RESULTS-WRITABLE" in out  # StateDirectory, drop-in
    assert "ls: cannot open directory '/home': Permission denied" in out  # ProtectHome=yes
    assert "private" not in out
    assert "/etc/ingestd/symbl_app_secret: Permission denied" in out  # root's file ...
    assert api.options.app_secret in out  # ... handed over by LoadCredential=
    assert "/proc/meminfo: No such file or directory" in out  # ProcSubset=pid
    devices = _as_daemon(container, "ls /dev").split()
    assert "null" in devices and "net" not in devices, devices  # PrivateDevices=yes
    pids_seen = [p for p in _as_daemon(container, "ls /proc").split() if p.isdigit()]
    assert str(pid) in pids_seen and "1" not in pids_seen, pids_seen  # ProtectProc=invisible

    mounts = _mounts(container.path(f"/proc/{pid}/mountinfo").read_text())
    for point, option, why in (
        ("/", "ro", "ProtectSystem=strict"),
        ("/sys", "ro", "ProtectKernelTunables=yes"),
        ("/sys/fs/cgroup", "ro", "ProtectControlGroups=yes"),
        ("/var/lib/ingestd", "rw", "StateDirectory="),
        ("/srv/results", "rw", "ReadWritePaths= of the drop-in"),
        ("/srv/recordings", "rw", "ReadWritePaths= of the drop-in"),
    ):
        assert option in mounts.get(point, ("",))[0].split(","), (point, why, mounts)
    assert mounts["/dev"][1] == "tmpfs", ("PrivateDevices=yes", mounts["/dev"])
    assert "/tmp" in mounts and "/var/tmp" in mounts, "PrivateTmp=yes"

    for ns in ("mnt", "ipc", "uts", "user"):  # PrivateMounts/Tmp, PrivateIPC, ProtectHostname
        theirs = os.readlink(container.path(f"/proc/{pid}/ns/{ns}"))
        init = os.readlink(container.path(f"/proc/1/ns/{ns}"))
        assert theirs != init, f"the daemon shares PID 1's {ns} namespace"
    uid_map = container.path(f"/proc/{pid}/uid_map").read_text().split()
    assert len(uid_map) == 6, f"PrivateUsers=yes maps root and the user only: {uid_map}"

    score = container.sh(f"systemd-analyze security {UNIT} --no-pager", check=False).stdout
    match = re.search(r"Overall exposure level for ingestd.service: (\d+\.\d+)", score)
    assert match, score
    assert float(match.group(1)) <= MAX_EXPOSURE, score
    FIGURES["exposure (systemd-analyze security, running unit)"] = match.group(1)

    _device_policy(container)


def _mounts(mountinfo: str) -> dict[str, tuple[str, str]]:
    """Mount point -> (mount options, file system type), the topmost mount of each."""
    found: dict[str, tuple[str, str]] = {}
    for line in mountinfo.splitlines():
        fields, _, rest = line.partition(" - ")
        parts = fields.split()
        found[parts[4]] = (parts[5], rest.split()[0])
    return found


def _device_policy(container: Container) -> None:
    """DevicePolicy=closed: enforced, or reported with the reason it cannot be here.

    /dev/net/tun is not among the pseudo devices `closed` allows. PrivateDevices=yes hides it
    from the daemon anyway, so the check runs in a transient unit without PrivateDevices."""
    opened = container.sh(
        "systemd-run --wait --pipe --quiet -p DevicePolicy=closed "
        "/bin/sh -c 'exec 3<>/dev/net/tun && echo OPENED'",
        check=False,
        timeout=60,
    ).stdout
    if "OPENED" not in opened:
        return  # enforced
    devices = container.sh("grep -w devices /proc/self/cgroup; true").stdout.strip()
    writable = container.sh(
        "test -w /sys/fs/cgroup/devices/devices.deny && echo yes || echo no"
    ).stdout.strip()
    assert writable == "no", "the devices controller is writable, yet the policy did not hold"
    LIMITS["DevicePolicy=closed (and the device list ProtectClock= adds)"] = (
        "not enforced inside nspawn: the host uses cgroup v1, and nspawn gives the container "
        f"no writable devices controller ({devices or 'none'}), so its systemd cannot set "
        "device access lists; PrivateDevices=yes still leaves the daemon only pseudo devices "
        "(no /dev/rtc), and ProtectClock='s system-call half is in the seccomp filter"
    )


def test_two_instances_of_the_template(
    container: Container, api: Any, installed: dict, share: Path
) -> None:
    """ingestd@sales and ingestd@support side by side: own config, credential, state and
    journal; each submits its own file once."""
    names = ("sales", "support")
    for name in names:
        container.run(INGESTD, "install-unit", "--instance", name)
        container.write(f"/etc/ingestd/{name}.symbl_app_secret", api.options.app_secret, 0o600)
        make_folders(container, f"/srv/recordings-{name}", f"/srv/results-{name}")
        text = config_text(api, name=name, watch=f"/srv/recordings-{name}")
        container.write(f"/etc/ingestd/{name}.yaml", text, 0o640)
        container.sh(f"chgrp ingestd /etc/ingestd/{name}.yaml")
    container.run("systemctl", "daemon-reload")
    container.run("systemctl", "start", *(f"ingestd@{n}" for n in names))
    digests = {n: drop(share, f"recordings-{n}", f"{n}-call.wav") for n in names}
    for name in names:
        wait_done(container, [f"{name}-call.wav"], state_dir=f"/var/lib/ingestd/{name}")
        assert active(container, f"ingestd@{name}")["SubState"] == "running"
        assert created(api, digests[name]) == 1
        theirs = events(journal(container, f"ingestd@{name}"))
        paths = {e["path"] for e in theirs if e.get("event") == "recording_finished"}
        assert paths == {f"{name}-call.wav"}, paths
    assert states(container, "/var/lib/ingestd/sales").keys() == {"sales-call.wav"}
    container.run("systemctl", "stop", *(f"ingestd@{n}" for n in names))
