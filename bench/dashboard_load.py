"""Dashboard load: the throughput run again while 20 clients poll ``/api/status`` every second.

The dashboard reads the store on its own read-only connections in its own threads; this
checks that it costs the pipeline nothing that matters: the 500-recording throughput run
with the pollers must finish within 5 % of the same run without them (runs alternate, see
`run`). Each poller's requests are bounded: one a second until the run ends, 10 s timeout.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.request
from typing import Any

from bench.common import Context, Row, log
from bench.throughput import measure_ingestd

CLIENTS = 20
TOLERANCE = 0.05


class Pollers:
    """`clients` pollers in a process of their own (`_Polling`), so that their threads do not
    compete with the sandbox, which runs in the bench's process, for its interpreter lock."""

    def __init__(self, url: str, clients: int) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "bench.dashboard_load", url, str(clients)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._result: dict[str, Any] | None = None

    def __enter__(self) -> Pollers:
        return self

    def __exit__(self, *_: Any) -> None:
        self.stop()

    def stop(self) -> dict[str, Any]:
        if self._result is None:
            out, _ = self._process.communicate("stop\n", timeout=60)  # stdin closed: stop
            self._result = json.loads(out)
        return self._result


class _Polling:
    """`clients` threads, each GETting `url` once a second until `stop`."""

    def __init__(self, url: str, clients: int) -> None:
        self.url = url
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.latencies: list[float] = []
        self.errors = 0
        self._threads = [
            threading.Thread(target=self._poll, name=f"poller-{i}", daemon=True)
            for i in range(clients)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                with urllib.request.urlopen(self.url, timeout=10) as response:
                    response.read()
                    ok = response.status == 200
            except OSError:
                ok = False
            took = time.monotonic() - started
            with self._lock:
                if ok:
                    self.latencies.append(took)
                else:
                    self.errors += 1
            self._stop.wait(max(0.0, 1.0 - took))

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)
        ordered = sorted(self.latencies)
        p = (lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]) if ordered else None
        return {
            "clients": len(self._threads),
            "requests": len(ordered),
            "errors": self.errors,
            "latency_p50_s": p(0.5) if p else None,
            "latency_p99_s": p(0.99) if p else None,
            "latency_max_s": ordered[-1] if ordered else None,
        }


def run(ctx: Context) -> list[Row]:
    count = 100 if ctx.quick else 500
    # Without, with, with, without: a machine whose load drifts during the runs (other work,
    # page cache, thermal) weighs on both sides alike.
    runs: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
    for i, polled in enumerate((False, True, True, False)):
        how = f"with {CLIENTS} clients polling /api/status" if polled else "without pollers"
        log(f"dashboard: run {i + 1} of 4, {count} recordings {how}")
        runs[polled].append(
            measure_ingestd(
                ctx, count, f"dashboard-{i}", dashboard_clients=CLIENTS if polled else 0
            )
        )
    base = sum(r["elapsed_from_settled"] for r in runs[False]) / 2
    loaded = sum(r["elapsed_from_settled"] for r in runs[True]) / 2
    polls = [r["dashboard_polling"] for r in runs[True]]
    requests = sum(p["requests"] for p in polls)
    errors = sum(p["errors"] for p in polls)
    p99 = max(p["latency_p99_s"] or 0 for p in polls)
    slowest = max(p["latency_max_s"] or 0 for p in polls)
    slower = loaded / base - 1
    done = sum(r["outcomes"].get("done", 0) for r in runs[True])
    each = ", ".join(
        f"{r['elapsed_from_settled']:.1f}{'*' if r['dashboard_polling'] else ''}"
        for r in (runs[False][0], *runs[True], runs[False][1])
    )
    return [
        Row(
            benchmark="dashboard",
            metric=f"{count} recordings while {CLIENTS} clients poll /api/status each second",
            ingestd=round(loaded, 2),
            ingestd_text=f"{loaded:.1f} s ({slower:+.1%})",
            baseline=round(base, 2),
            baseline_text=f"{base:.1f} s without the pollers",
            ratio=round(loaded / base, 3),
            ratio_text=f"{loaded / base:.3f}",
            target=f"within {TOLERANCE:.0%}",
            passed=slower <= TOLERANCE and done == 2 * count and errors == 0,
            notes=(
                f"means of 2 runs each, in the order without/with/with/without (s, * = polled): "
                f"{each}; {requests} status requests, {errors} errors, latency p99 {p99:.3f} s,"
                f" max {slowest:.3f} s; {done}/{2 * count} done"
            ),
            details={"without": runs[False], "with": runs[True]},
        )
    ]


if __name__ == "__main__":  # the pollers' process: poll until stdin closes, print the figures
    polling = _Polling(sys.argv[1], int(sys.argv[2]))
    polling.start()
    sys.stdin.read()
    print(json.dumps(polling.stop()))
