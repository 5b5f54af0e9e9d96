"""Crash anywhere: SIGKILL the real daemon at random moments while it works through a batch.

Counts come from the environment for soak runs (defaults keep CI within ~2 minutes)::

    INGESTD_SOAK_CYCLES=60 INGESTD_SOAK_FILES=200 scripts/test tests/reliability/test_crash.py -s

``INGESTD_SOAK_SEED`` replays one run's kill schedule (the seed is printed with the figures).
``INGESTD_SOAK_OUT=PATH`` also writes the figures as JSON to PATH (they always go to
``soak-figures.json`` in the test's temporary folder), to keep a soak run's record.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from ingestd import mediagen
from ingestd.testing import copy_slowly, drop

from .support import (
    TERMINAL,
    created,
    log_tail,
    results,
    rows_by_path,
    sha256,
    states_after_kill,
    wait_terminal,
)

CYCLES = int(os.environ.get("INGESTD_SOAK_CYCLES", "30"))
FILES = int(os.environ.get("INGESTD_SOAK_FILES", "100"))
# Also lose upload answers and answer 429 now and then (INGESTD_SOAK_FAULTS=0: crashes only).
FAULTS = os.environ.get("INGESTD_SOAK_FAULTS", "1") != "0"
SEED = int(os.environ.get("INGESTD_SOAK_SEED", str(random.SystemRandom().randrange(1 << 31))))


def _make_batch(staging: Path, count: int, rng: random.Random) -> list[Path]:
    """Tiny, distinct recordings: mostly wav and mp3 (sent as they are), some flac
    (transcoded, so kills also land inside ffmpeg runs)."""
    staging.mkdir(parents=True, exist_ok=True)
    suffixes = [".wav", ".wav", ".mp3", ".wav", ".flac"]

    def make(i: int) -> Path:
        path = staging / f"rec-{i:04d}{suffixes[i % len(suffixes)]}"
        return mediagen.make_audio(
            path, seconds=round(rng.uniform(0.2, 0.5), 2), frequency_hz=150 + 7 * i, seed=i
        )

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(make, range(count)))


def _write_figures(figures: dict[str, Any], root: Path) -> list[Path]:
    """Write the figures to the test's folder, and to ``INGESTD_SOAK_OUT`` when it is set."""
    targets = [root / "soak-figures.json"]
    if out := os.environ.get("INGESTD_SOAK_OUT"):
        targets.append(Path(out).expanduser())
    for target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
    return targets


def test_figures_also_go_to_soak_out_when_set(tmp_path, monkeypatch) -> None:
    """INGESTD_SOAK_OUT=PATH gets the same JSON as the test folder; unset, only the latter."""
    figures = {"cycles": 2, "files": 3, "lost": 0, "doubled": 0, "seed": 7}
    monkeypatch.delenv("INGESTD_SOAK_OUT", raising=False)
    assert _write_figures(figures, tmp_path / "a") == [tmp_path / "a" / "soak-figures.json"]
    out = tmp_path / "soak" / "latest.json"
    monkeypatch.setenv("INGESTD_SOAK_OUT", str(out))
    _write_figures(figures, tmp_path / "b")
    assert json.loads(out.read_text()) == figures
    assert out.read_text() == (tmp_path / "b" / "soak-figures.json").read_text()


@pytest.mark.slow(seconds=85)
def test_sigkill_at_random_moments_loses_nothing_and_doubles_nothing(
    ingestd_env, sandbox, tmp_path
) -> None:
    """Across many SIGKILL/restart cycles (with lost answers and 429s) every file is submitted
    exactly once and delivered."""
    rng = random.Random(SEED)
    sandbox.set_options({"job_seconds": 0.2, "schedule_seconds": 0.02})
    files = _make_batch(tmp_path / "staging", FILES, rng)
    hashes = {f.name: sha256(f) for f in files}
    as_is = {f.name for f in files if f.suffix != ".flac"}
    env = ingestd_env
    env.write_config(
        watch={"settle_seconds": 0.5},
        symbl={"poll_initial_seconds": 0.05, "poll_max_seconds": 0.3},
        pipeline={
            "retry_initial_seconds": 0.1,
            "retry_max_seconds": 1,
            "rescan_interval_seconds": 5,
            "shutdown_grace_seconds": 2,
        },
        logging={"format": "json", "level": "info"},
    )
    # Files arrive over the first 80 % of the cycles: some while the daemon is down, some
    # while it starts, some while it works; one in eight arrives as a slow copy.
    pending = list(files)
    rng.shuffle(pending)
    arrival_cycles = max(1, int(CYCLES * 0.8))
    per_cycle = -(-len(pending) // arrival_cycles)
    copiers: list[threading.Thread] = []
    states_at_kill: Counter[str] = Counter()
    started = time.monotonic()

    def arrive(batch: list[Path]) -> None:
        for f in batch:
            if rng.random() < 0.125:
                target = env.inbox / f.name
                copier = threading.Thread(target=copy_slowly, args=(f, target, 0.5, 10))
                copier.start()
                copiers.append(copier)
            else:
                drop(f, env.inbox)

    for _ in range(CYCLES):
        batch, pending = pending[:per_cycle], pending[per_cycle:]
        split = rng.randrange(len(batch) + 1)
        arrive(batch[:split])  # while down
        if FAULTS and rng.random() < 0.3:
            sandbox.faults.arm({"kind": "drop_after_upload", "times": 1, "route": "submit"})
        if FAULTS and rng.random() < 0.2:
            sandbox.faults.arm(
                {"kind": "status", "status": 429, "times": 2, "retry_after": 0.3, "route": "submit"}
            )
        daemon = env.daemon().start()
        if rng.random() < 0.2:  # killed while starting up (imports, resume, rescan)
            arrive(batch[split:])
            time.sleep(rng.uniform(0.05, 0.9))
        else:  # killed while working
            daemon.wait_ready()
            began, run_for = time.monotonic(), rng.uniform(0.1, 1.6)
            time.sleep(run_for * rng.random())
            arrive(batch[split:])
            time.sleep(max(0.0, run_for - (time.monotonic() - began)))
        daemon.kill()
        states_at_kill.update(states_after_kill(env))
    for copier in copiers:
        copier.join()
    cycles_seconds = time.monotonic() - started

    final = env.daemon().start()
    final.wait_ready()
    states = wait_terminal(env, hashes, timeout=120 + FILES * 0.5)
    assert final.stop() == 0, "the last daemon stops cleanly"

    rows = rows_by_path(env)
    posts = Counter(
        (s.get("params") or {}).get("name") for s in created(sandbox) if s["method"] == "POST"
    )
    created_shas = Counter(s["sha256"] for s in created(sandbox))
    lost = sorted(n for n in hashes if states.get(n) != "done")
    doubled = sorted(n for n in hashes if posts[Path(n).stem] > 1)
    never_sent = sorted(n for n in hashes if posts[Path(n).stem] == 0)
    figures = {
        "cycles": CYCLES,
        "files": FILES,
        "lost": len(lost),
        "doubled": len(doubled),
        "seed": SEED,
        "cycle_phase_seconds": round(cycles_seconds, 1),
        "recording_states_seen_at_kills": dict(states_at_kill),
        "conversations_at_sandbox": len(sandbox.conversations()),
        "faults_fired": sandbox.stats()["faults_fired"],
    }
    print("\nsoak figures: " + json.dumps(figures, sort_keys=True))
    _write_figures(figures, env.root)

    assert not lost, f"not done: {[(n, states.get(n)) for n in lost]}\n{log_tail(env)}"
    assert not doubled, f"submitted more than once: {[(n, posts[Path(n).stem]) for n in doubled]}"
    assert not never_sent, f"done but never created at the sandbox: {never_sent}"
    for name in as_is:
        assert created_shas[hashes[name]] == 1, f"{name}: its bytes arrived {created_shas}"
    assert len(sandbox.conversations()) == FILES, "no orphan conversation at the sandbox"
    stuck = [r["relpath"] for r in env.rows() if r["state"] not in TERMINAL]
    assert not stuck, f"stuck: {stuck}"
    assert all(len(v) == 1 for v in rows.values()), "one recording per file (no partial copy)"
    delivered = results(env)
    conversations = sandbox.conversations()
    for name in hashes:
        row = rows[name][0]
        cid = row["conversation_id"]
        assert cid in delivered, f"{name}: no insights.json for conversation {cid}"
        assert delivered[cid]["ingestd"]["parts"][0]["relpath"] == name
        assert conversations[cid]["name"] == Path(name).stem, f"{name} got another's conversation"
        if name in as_is:
            assert conversations[cid]["parts"][0]["sha256"] == hashes[name]
    leftovers = list((env.state_db.parent / "work" / "transcode").glob("*"))
    assert not leftovers, f"work files left behind: {leftovers}"
