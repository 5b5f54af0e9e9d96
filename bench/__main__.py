"""``bench/run [--quick] [--only NAME ...] [--keep] [--workdir DIR]``: run the benchmarks
against the sandbox on loopback and print one table, each ingestd figure beside the
baseline measured in the same run; the same as JSON in ``bench/results/latest.json``
(``--quick`` runs write ``bench/results/latest-quick.json`` unless ``--json`` says otherwise).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

from bench.common import REPO, Context, Row, log, machine_notes

BENCHMARKS = {
    "memory": "bench.memory",
    "latency": "bench.latency",
    "throughput": "bench.throughput",
    "dashboard": "bench.dashboard_load",
    "requests": "bench.requests_per_recording",
    "backlog": "bench.backlog",
    "idle": "bench.idle",
    "transcode": "bench.transcode",
    "openai": "bench.openai",
    "growth": "bench.growth",
    "nodes": "bench.nodes",
    "failover": "bench.failover",
}
"""Run order: requests and dashboard reuse the throughput run, and latency's baseline serves
all three."""


def _verdict(row: Row) -> str:
    return {True: "pass", False: "FAIL", None: "—"}[row.passed]


def render_table(rows: list[Row]) -> str:
    header = ("benchmark", "metric", "ingestd", "baseline", "ratio", "target", "result")
    lines = [header] + [
        (r.benchmark, r.metric, r.ingestd_text, r.baseline_text, r.ratio_text, r.target,
         _verdict(r))
        for r in rows
    ]  # fmt: skip
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]

    def fmt(line: tuple[str, ...]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)) + " |"

    out = [fmt(lines[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [fmt(line) for line in lines[1:]]
    notes = [f"- {r.benchmark}: {r.notes}" for r in rows if r.notes]
    return "\n".join(out + (["", *notes] if notes else []))


def _loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes: a smoke run")
    parser.add_argument(
        "--only", action="append", choices=list(BENCHMARKS), metavar="NAME",
        help=f"run only this benchmark (repeatable): {', '.join(BENCHMARKS)}",
    )  # fmt: skip
    parser.add_argument("--workdir", type=Path, help="scratch folder (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch files")
    parser.add_argument("--json", type=Path, help="where to write the results")
    parser.add_argument(
        "--failover-kills", type=int, metavar="N",
        help="kills the failover benchmark times (default 10, 3 with --quick; ~35 s each)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    names = args.only or list(BENCHMARKS)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ingestd-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    ctx = Context(
        quick=args.quick, workdir=workdir, keep=args.keep, failover_kills=args.failover_kills
    )
    started = time.monotonic()
    rows: list[Row] = []
    timings: dict[str, float] = {}
    load: dict[str, list[float]] = {}
    failures: list[str] = []
    for name in names:
        log(f"== {name} (load average {_loadavg()})")
        load[name] = _loadavg()
        began = time.monotonic()
        try:
            module = importlib.import_module(BENCHMARKS[name])
            rows.extend(module.run(ctx))
        except Exception as exc:
            traceback.print_exc()
            failures.append(name)
            rows.append(Row(name, "error", None, "error", passed=False, notes=str(exc)[:300]))
        timings[name] = round(time.monotonic() - began, 1)
        log(f"== {name} took {timings[name]:.0f} s")
    total = time.monotonic() - started
    table = render_table(rows)
    print(table)
    print(f"\n{'quick' if args.quick else 'full'} run: {total / 60:.1f} min; "
          f"per benchmark (s): {timings}")  # fmt: skip
    result = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "mode": "quick" if args.quick else "full",
        "benchmarks": names,
        "seconds": round(total, 1),
        "seconds_by_benchmark": timings,
        "load_average_at_start": load,
        "machine": machine_notes(workdir),
        "rows": [r.to_dict() for r in rows],
        "table": table,
    }
    target = args.json or REPO / "bench" / "results" / (
        "latest-quick.json" if args.quick else "latest.json"
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(result, indent=2, default=str) + "\n")
    log(f"results written to {target}")
    if not args.keep and args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    failed = failures or [r.benchmark for r in rows if r.passed is False]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
