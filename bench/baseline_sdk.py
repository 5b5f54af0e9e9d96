"""The baseline: how Symbl's official Python SDK (``symbl`` 2.0.6) processes files, redone
with plain httpx (symbl-api.md §11), so the bench does not depend on the SDK.

For each file, one at a time:

1. the token, fetched lazily on the first call and kept process-wide, sent as ``x-api-key``;
2. ``open(path).read()``: the **whole file in memory**, sent as one request body;
3. the job: **sleep 30 s first, then** ``GET /v1/job/{id}``, again every 30 s until
   ``completed`` or ``failed`` (no overall timeout, no retry);
4. the conversation and the same insight kinds ingestd fetches by default, one after the
   other, written to ``<out>/<name>.json``.

    python -m bench.baseline_sdk --base-url URL --out DIR [--poll-seconds 30] FILE...

Writes a JSON report (``--report``) with a timeline per file (wall-clock UNIX seconds, and
the CPU the file cost), the requests it made, and its own peak RSS (VmHWM) read just before
it exits.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx

SDK_POLL_SECONDS = 30.0
"""`Conversation` passes 30 s to the job poller (the `Job` class default of 5 s is unused)."""

FETCHES = [
    ("", {}),
    ("/messages", {"verbose": "true", "sentiment": "true"}),
    ("/topics", {"sentiment": "true", "parentRefs": "true"}),
    ("/questions", {}),
    ("/action-items", {}),
    ("/follow-ups", {}),
    ("/members", {}),
]
"""What ingestd fetches by default (pipeline.fetch), so both write the same results."""

CONTENT_TYPES = {".wav": ("audio", "audio/wav"), ".mp3": ("audio", "audio/mpeg")}


class SdkLikeClient:
    def __init__(
        self, base_url: str, app_id: str, app_secret: str, *, poll_seconds: float, out: Path
    ) -> None:
        self.poll_seconds = poll_seconds
        self.out = out
        self.http = httpx.Client(base_url=base_url, timeout=None)  # the SDK sets no timeout
        self.app_id = app_id
        self.app_secret = app_secret
        self.token: str | None = None
        self.requests: dict[str, int] = {"token": 0, "upload": 0, "poll": 0, "fetch": 0}

    def _headers(self) -> dict[str, str]:
        if self.token is None:  # lazily, once per process
            self.requests["token"] += 1
            answer = self.http.post(
                "/oauth2/token:generate",
                json={"type": "application", "appId": self.app_id, "appSecret": self.app_secret},
            )
            answer.raise_for_status()
            self.token = answer.json()["accessToken"]
        return {"x-api-key": self.token}

    def process_file(self, path: Path) -> dict[str, Any]:
        """Read it all, POST it, wait for the job (30 s polls), fetch; the timeline."""
        times: dict[str, Any] = {"file": path.name, "started": time.time()}
        cpu_before = _cpu_seconds()
        route, content_type = CONTENT_TYPES.get(path.suffix.lower(), ("video", "video/mp4"))
        headers = {**self._headers(), "Content-Type": content_type}
        with open(path, "rb") as handle:
            data = handle.read()  # the SDK's way: the whole recording in memory
        times["read"] = time.time()
        self.requests["upload"] += 1
        answer = self.http.post(
            f"/v1/process/{route}", params={"name": path.stem}, content=data, headers=headers
        )
        answer.raise_for_status()
        times["uploaded"] = time.time()
        job = answer.json()
        conversation_id, job_id = job["conversationId"], job["jobId"]
        status = "scheduled"
        while status not in ("completed", "failed"):
            time.sleep(self.poll_seconds)  # sleeps first, then asks
            self.requests["poll"] += 1
            poll = self.http.get(f"/v1/job/{job_id}", headers=self._headers())
            poll.raise_for_status()
            status = poll.json()["status"]
        times["job_done_seen"] = time.time()
        times["status"] = status
        results: dict[str, Any] = {}
        for suffix, query in FETCHES:
            self.requests["fetch"] += 1
            got = self.http.get(
                f"/v1/conversations/{conversation_id}{suffix}",
                params=query,
                headers=self._headers(),
            )
            got.raise_for_status()
            results[suffix.strip("/") or "conversation"] = got.json()
        out = self.out / f"{path.stem}.json"
        out.write_text(json.dumps(results))
        times["written"] = time.time()
        times["cpu_seconds"] = _cpu_seconds() - cpu_before
        times["conversation_id"] = conversation_id
        del data
        return times


def _cpu_seconds() -> float:
    """user + sys of this process and its children: the CPU one file costs, start-up and
    imports excluded (the daemon's figure also starts after it is ready)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def peak_rss_kb() -> int | None:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--app-id", default="sandbox")
    parser.add_argument("--app-secret", default="sandbox")
    parser.add_argument("--poll-seconds", type=float, default=SDK_POLL_SECONDS)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--report", type=Path)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    client = SdkLikeClient(
        args.base_url, args.app_id, args.app_secret, poll_seconds=args.poll_seconds, out=args.out
    )
    started = time.time()
    timeline = [client.process_file(path) for path in args.files]  # one file at a time
    report = {
        "started": started,
        "finished": time.time(),
        "poll_seconds": args.poll_seconds,
        "files": timeline,
        "requests": client.requests,
        "peak_rss_kb": peak_rss_kb(),
    }
    text = json.dumps(report, indent=2)
    if args.report:
        args.report.write_text(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
