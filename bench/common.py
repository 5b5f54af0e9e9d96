"""Shared plumbing for the benchmarks: the real daemon as a subprocess, the sandbox in the
bench process, /proc readings, media generation, result rows and machine notes.

The daemon under test is always ``python -m ingestd.cli run`` in its own process (as
systemd runs it), pointed at a `Sandbox` served from a thread of *this* process, so the
emulator's memory and CPU are never counted as the daemon's. The SDK-style baseline
(`bench.baseline_sdk`) is a third process.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import random
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def log(message: str) -> None:
    """Progress on stderr (the table goes to stdout)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- results ---------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the table: a figure for ingestd beside the baseline's, and the verdict."""

    benchmark: str
    metric: str
    ingestd: float | None
    ingestd_text: str
    baseline: float | None = None
    baseline_text: str = "n/a"
    ratio: float | None = None
    ratio_text: str = ""
    target: str = ""
    passed: bool | None = None
    notes: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Context:
    """What every benchmark gets: sizes (`quick`), a scratch folder, and shared runs."""

    quick: bool
    workdir: Path
    keep: bool = False
    failover_kills: int | None = None
    """``--failover-kills N``: how many kills the failover benchmark times."""
    cache_dir: Path = REPO / "bench" / ".cache"
    shared: dict[str, Any] = field(default_factory=dict)

    def scratch(self, name: str) -> Path:
        path = self.workdir / name
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
        return path

    def cleanup(self, path: Path) -> None:
        if not self.keep:
            shutil.rmtree(path, ignore_errors=True)


# -- /proc -----------------------------------------------------------------------------------


def proc_status_kb(pid: int, key: str) -> int | None:
    """A ``kB`` field of /proc/<pid>/status (VmHWM = peak RSS, VmRSS = current RSS)."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of the process itself (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as handle:
        raw = handle.read()
    fields = raw[raw.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_cpu_times(pid: int) -> dict[str, float]:
    """utime and stime of the process (all its threads) and of its children it has waited
    for (cutime, cstime: ffprobe, ffmpeg), in seconds: what the daemon costs the machine."""
    with open(f"/proc/{pid}/stat") as handle:
        raw = handle.read()
    fields = raw[raw.rindex(")") + 2 :].split()
    user, system, child_user, child_system = (int(f) / CLK_TCK for f in fields[11:15])
    return {
        "user": user,
        "system": system,
        "children_user": child_user,
        "children_system": child_system,
        "total": user + system + child_user + child_system,
    }


def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {key: round(after[key] - before[key], 3) for key in after}


_SPEED_PROBE = """
import sys, time
while True:
    started, x = time.process_time(), 0
    for i in range(200_000):
        x += i * i % 7
    print(round(1000 * (time.process_time() - started), 2), flush=True)
    time.sleep(float(sys.argv[1]))
"""


class SpeedProbe:
    """How fast this machine runs Python while a measurement runs: a separate process
    times a fixed loop of pure Python (its own CPU time) every `interval` seconds.

    On a shared VM the same work costs up to half again as much CPU time when the host is
    busy (this loop measured 0.40 to 0.63 s for 25 times its work within a minute), and the
    daemon's CPU per recording moves with it; the probe's figures say which kind of moment
    a run had. About 1 % of one core.
    """

    def __init__(self, interval: float = 2.0) -> None:
        self.interval = interval
        self._process: subprocess.Popen[str] | None = None

    def __enter__(self) -> SpeedProbe:
        self._process = subprocess.Popen(
            [PYTHON, "-c", _SPEED_PROBE, str(self.interval)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> dict[str, Any]:
        """The loop's CPU times in ms: median, fastest, slowest, all of them."""
        if self._process is None:
            return {}
        self._process.terminate()
        out, _ = self._process.communicate(timeout=10)
        self._process = None
        samples = [float(line) for line in out.split()]
        self.figures = {
            "loop_ms_median": percentile(samples, 0.5) if samples else None,
            "loop_ms_min": min(samples, default=None),
            "loop_ms_max": max(samples, default=None),
            "loop_ms": samples,
        }
        return self.figures


class RssSampler:
    """Samples a process's VmRSS on a thread (a cross-check of the kernel's VmHWM)."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid = pid
        self.interval = interval
        self.peak_kb = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            rss = proc_status_kb(self.pid, "VmRSS")
            if rss is None:
                return
            self.peak_kb = max(self.peak_kb, rss)
            self.samples += 1
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def mb(kb: int | float | None) -> float | None:
    return None if kb is None else round(kb / 1024, 1)


# -- the sandbox -----------------------------------------------------------------------------


@contextmanager
def sandbox(**options: Any) -> Iterator[Any]:
    """A `Sandbox` on a loopback port, served from a thread of the bench process."""
    from ingestd.sandbox import Sandbox, SandboxOptions

    box = Sandbox(SandboxOptions(**options))
    box.start("127.0.0.1", 0)
    try:
        yield box
    finally:
        box.stop()


def request_counts(stats: dict[str, Any]) -> dict[str, int]:
    """Requests by kind from `Sandbox.stats()`: token, upload, poll, fetch, other, 429s."""
    kinds = {"token": 0, "upload": 0, "poll": 0, "fetch": 0, "other": 0, "status_429": 0}
    for route, by_status in stats.get("requests", {}).items():
        n = sum(by_status.values())
        kinds["status_429"] += by_status.get("429", 0)
        if route == "token":
            kinds["token"] += n
        elif route in ("audio", "video", "audio_url", "video_url"):
            kinds["upload"] += n
        elif route == "job":
            kinds["poll"] += n
        elif route.startswith("conversation"):
            kinds["fetch"] += n
        else:
            kinds["other"] += n
    return kinds


# -- PostgreSQL --------------------------------------------------------------------------------

POSTGRES_ADMIN = os.environ.get(
    "INGESTD_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
"""The server the several-node benchmarks make their databases on (a database each, dropped
after the run); ``INGESTD_BENCH_POSTGRES`` names another (a URL to its admin database)."""


@contextmanager
def postgres_database() -> Iterator[str]:
    """A new, empty database on `POSTGRES_ADMIN`'s server for one run; its URL. A server
    that is down fails the benchmark, saying so."""
    import secrets

    import psycopg

    name = f"ingestd_bench_{secrets.token_hex(5)}"
    try:
        admin = psycopg.connect(POSTGRES_ADMIN, autocommit=True, connect_timeout=5)
    except psycopg.Error as exc:
        raise RuntimeError(
            f"PostgreSQL at {POSTGRES_ADMIN} is unusable ({exc}); start it (scripts/services)"
            " or name another with INGESTD_BENCH_POSTGRES"
        ) from None
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield POSTGRES_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def node_config(
    config: dict[str, Any], inbox: Path, state_url: str, name: str, work_dir: Path, **node: Any
) -> dict[str, Any]:
    """`config` (from `daemon_config`) as node `name` of several on `state_url` that share
    the watched folder `inbox`; `node` adds ``node:`` keys (heartbeat_seconds, ...)."""
    config = dict(config)
    config["watch"] = [{**config["watch"][0], "path": str(inbox)}]
    config["state"] = {"url": state_url, "work_dir": str(work_dir)}
    config["node"] = {"name": name, **node}
    return config


# -- the daemon ------------------------------------------------------------------------------


def daemon_config(
    root: Path,
    sandbox_url: str,
    *,
    watch: dict[str, Any] | None = None,
    symbl: dict[str, Any] | None = None,
    pipeline: dict[str, Any] | None = None,
    webhook: bool = True,
) -> dict[str, Any]:
    """A config as an operator would write it: the shipped defaults for polling, retries and
    everything else, except a short settle window (the bench measures from the settled
    moment) and JSON logs at info level (what journald gets).

    `webhook`: take Symbl's job-status POSTs on loopback, as a deployment that Symbl can
    reach is set up (``symbl.webhook``); False measures polling alone.
    """
    inbox = root / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    return {
        "symbl": {
            "base_url": sandbox_url,
            "app_id": "sandbox",
            "app_secret": "sandbox",
            "max_concurrent_jobs": 5,
            **({"webhook": {"listen": "127.0.0.1:0"}} if webhook else {}),
            **(symbl or {}),
        },
        "state": {"url": f"sqlite:///{root / 'state' / 'state.db'}"},
        "watch": [
            {
                "name": "inbox",
                "path": str(inbox),
                "settle_seconds": 0.5,
                "patterns": ["*.wav", "*.mp3", "*.mp4", "*.m4a", "*.mov"],
                **(watch or {}),
            }
        ],
        "sinks": [{"type": "files", "path": str(root / "results")}],
        "pipeline": {**(pipeline or {})},
        "logging": {"format": "json", "level": "info"},
    }


def parse_ts(value: str) -> float:
    """UNIX seconds from structlog's ISO timestamp (UTC)."""
    stamp = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    return stamp.timestamp()


class Daemon:
    """``ingestd run`` as a subprocess; its JSON log lines read incrementally."""

    def __init__(self, root: Path, config: dict[str, Any]) -> None:
        self.root = root
        self.config_path = root / "ingestd.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.log_path = root / "daemon.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._events: list[dict[str, Any]] = []
        self._by_name: dict[str, list[dict[str, Any]]] = {}
        self._offset = 0
        self._partial = b""
        self._profiler: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> Daemon:
        self._offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self._events = []
        self._by_name = {}
        self._partial = b""
        with open(self.log_path, "ab") as out:
            self.process = subprocess.Popen(
                [PYTHON, "-m", "ingestd.cli", "run", "--config", str(self.config_path)],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.root,
            )
        self._start_profiler()
        return self

    def _start_profiler(self) -> None:
        """With INGESTD_BENCH_PROFILE=DIR, py-spy samples the daemon until it stops and
        writes DIR/<config dir>-<pid>.txt (collapsed stacks: `flamegraph.pl`, speedscope,
        or sort by count) -- the profile the performance issues ask for before a change.
        INGESTD_BENCH_PROFILE_GIL=1 samples only the thread holding the GIL: where the
        daemon's Python CPU goes, leaving out waits on I/O and fsyncs."""
        out_dir = os.environ.get("INGESTD_BENCH_PROFILE")
        if not out_dir or self.process is None:
            return
        py_spy = shutil.which("py-spy") or str(Path(PYTHON).with_name("py-spy"))
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        out = Path(out_dir) / f"{self.root.name}-{self.process.pid}.txt"
        self._profiler = subprocess.Popen(
            [
                py_spy,
                "record",
                "--pid",
                str(self.process.pid),
                "--rate",
                "250",
                "--format",
                "raw",
                "--output",
                str(out),
                "--nonblocking",
                *(["--gil"] if os.environ.get("INGESTD_BENCH_PROFILE_GIL") == "1" else []),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def _stop_profiler(self) -> None:
        if self._profiler is not None and self._profiler.poll() is None:
            self._profiler.send_signal(signal.SIGINT)
            try:
                self._profiler.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._profiler.kill()
        self._profiler = None

    def events(self) -> list[dict[str, Any]]:
        """Every event logged since `start`, parsed once each."""
        with open(self.log_path, "rb") as handle:
            handle.seek(self._offset)
            data = self._partial + handle.read()
            self._offset = handle.tell()
        lines = data.split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            self._events.append(event)
            self._by_name.setdefault(event.get("event"), []).append(event)
        return self._events

    def where(self, name: str, **facts: Any) -> list[dict[str, Any]]:
        self.events()
        return [
            e for e in self._by_name.get(name, []) if all(e.get(k) == v for k, v in facts.items())
        ]

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_for(
        self, condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.02
    ) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = condition()
            if value:
                return value
            if not self.alive():
                raise RuntimeError(f"the daemon exited while waiting for {what}:\n{self.tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
            time.sleep(interval)

    def wait_ready(self, timeout: float = 120) -> None:
        self.wait_for(lambda: self.where("daemon_ready"), timeout, "daemon_ready", 0.05)

    def finished(self) -> list[dict[str, Any]]:
        return self.where("recording_finished")

    def tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def stop(self, timeout: float = 60) -> int | None:
        if self.process is None:
            return None
        self._stop_profiler()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()

    def __enter__(self) -> Daemon:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- media -----------------------------------------------------------------------------------


def wav_header(data_bytes: int, rate: int = 16000, channels: int = 1, bits: int = 16) -> bytes:
    block = channels * bits // 8
    return (
        b"RIFF"
        + struct.pack("<I", 36 + data_bytes)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, channels, rate, rate * block, block, bits)
        + b"data"
        + struct.pack("<I", data_bytes)
    )


def make_wav(path: Path, seconds: float, *, seed: int, rate: int = 16000) -> Path:
    """A valid 16-bit mono PCM wav of seeded noise: distinct bytes per seed (no duplicates),
    written without spawning ffmpeg, so hundreds take a fraction of a second."""
    n = int(seconds * rate) * 2
    path.write_bytes(wav_header(n, rate) + random.Random(seed).randbytes(n))
    return path


def make_big_wav(path: Path, size_bytes: int, *, rate: int = 48000) -> Path:
    """A `size_bytes` wav (16-bit mono PCM; 2 GiB at 48 kHz is 6.2 h), written in 8 MiB
    chunks of seeded noise so neither the writer nor the page cache sees anything sparse."""
    data_bytes = size_bytes - 44
    data_bytes -= data_bytes % 2
    block = random.Random(7).randbytes(8 << 20)
    with open(path, "wb") as out:
        out.write(wav_header(data_bytes, rate))
        left = data_bytes
        while left > 0:
            piece = block[: min(len(block), left)]
            out.write(piece)
            left -= len(piece)
    return path


def ffmpeg() -> str:
    from ingestd import executables

    return executables.ffmpeg()


def ffprobe_ok(path: Path) -> bool:
    from ingestd import executables

    done = subprocess.run(
        [executables.ffprobe(), "-v", "error", "-show_format", str(path)],
        capture_output=True,
        check=False,
    )
    return done.returncode == 0


def drop_all(paths: list[Path], inbox: Path) -> float:
    """Move finished files into the watched folder atomically; the time of the first."""
    first = time.time()
    for path in paths:
        os.replace(path, inbox / path.name)
    return first


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * p
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


# -- machine notes ---------------------------------------------------------------------------


def machine_notes(workdir: Path) -> dict[str, Any]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = proc_meminfo_kb("MemTotal")
    try:
        version = subprocess.run(
            [ffmpeg(), "-version"], capture_output=True, text=True, check=False
        ).stdout.splitlines()[0]
    except (OSError, IndexError):
        version = "?"
    disk = "?"
    try:
        df = (
            subprocess.run(["df", "-hT", str(workdir)], capture_output=True, text=True, check=False)
            .stdout.splitlines()[-1]
            .split()
        )
        disk = f"{df[0]} {df[1]}, {df[2]} total, {df[4]} free"
    except (OSError, IndexError):
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gb": round((mem_kb or 0) / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "ffmpeg": version,
        "disk": disk,
        "workdir": str(workdir),
    }


def proc_meminfo_kb(key: str) -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def free_bytes(path: Path) -> int:
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


# -- the baseline ----------------------------------------------------------------------------


def run_baseline(
    files: list[Path], base_url: str, root: Path, *, poll_seconds: float | None = None
) -> dict[str, Any]:
    """Run `bench.baseline_sdk` as its own process on `files`; its report, plus the peak RSS
    sampled from outside (`sampled_peak_rss_kb`) as a cross-check of its own VmHWM."""
    report = root / "baseline-report.json"
    argv = [PYTHON, "-m", "bench.baseline_sdk", "--base-url", base_url]
    argv += ["--out", str(root / "baseline-results"), "--report", str(report)]
    if poll_seconds is not None:
        argv += ["--poll-seconds", str(poll_seconds)]
    argv += [str(f) for f in files]
    process = subprocess.Popen(argv, cwd=REPO)
    with RssSampler(process.pid) as sampler:
        code = process.wait()
    if code != 0:
        raise RuntimeError(f"the baseline exited with status {code}")
    data = json.loads(report.read_text())
    data["sampled_peak_rss_kb"] = sampler.peak_kb
    return data


JOB_SECONDS = 1.0
"""Sandbox job time for latency, throughput and requests: exactly 1 s from submission to
``completed`` (``schedule_seconds=0``, so no extra scheduling delay is added)."""


def small_file_baseline(ctx: Context) -> dict[str, Any]:
    """The baseline on a few small wavs with 1 s jobs, run once per bench invocation and
    shared by the latency, throughput and requests benchmarks (each file costs the SDK's
    30 s poll, so it is measured on a few files only)."""
    if "baseline_small" in ctx.shared:
        return ctx.shared["baseline_small"]
    count = 1 if ctx.quick else 3
    root = ctx.scratch("baseline-small")
    files = [make_wav(root / f"sdk-{i:03d}.wav", 1.0, seed=900_000 + i) for i in range(count)]
    log(f"baseline: {count} small file(s), one at a time, 30 s polls (~{31 * count} s)")
    with sandbox(job_seconds=JOB_SECONDS, schedule_seconds=0.0, concurrency_limit=10) as box:
        report = run_baseline(files, box.url, root)
        report["sandbox_stats"] = box.stats()
    per_file = [f["written"] - f["started"] for f in report["files"]]
    report["per_file_seconds"] = per_file
    ctx.shared["baseline_small"] = report
    ctx.cleanup(root)
    return report
