"""A large upload streams from disk: peak memory stays flat whatever the file size.

The upload runs in a child process (client and sandbox together) so that its peak RSS starts
from a small, known baseline; the pytest process's own peak would hide any growth.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.symbl.conftest import write_wav

UPLOAD_BYTES = 300 * (1 << 20)
MAX_GROWTH_KB = 40 * 1024

CHILD = r"""
import asyncio, json, resource, sys
from pathlib import Path

from ingestd.model import Endpoint, EndpointKind, Params, Upload
from ingestd.sandbox import Sandbox, SandboxOptions
from ingestd_symbl.client import SymblClient
from ingestd_symbl.options import from_mapping


def peak_kb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


async def main(big, small):
    with Sandbox(SandboxOptions(job_seconds=0.2)) as sb:
        client = SymblClient(from_mapping({"base_url": sb.url, "app_id": "sandbox",
                                           "app_secret": "sandbox"}))
        endpoint = Endpoint(EndpointKind.AUDIO, "audio/wav")
        # Warm up every code path (token, thread pool, buffers) before measuring.
        await client.submit(endpoint, Upload(small, small.stat().st_size, None), Params(), None)
        before = peak_kb()
        sub = await client.submit(endpoint, Upload(big, big.stat().st_size, None), Params(), None)
        after = peak_kb()
        record = [r for r in sb.submissions() if r["jobId"] == sub.job_id][0]
        await client.aclose()
    print(json.dumps({"before_kb": before, "after_kb": after, "sha256": record["sha256"],
                      "size": record["size"], "content_length": record["content_length"]}))


asyncio.run(main(Path(sys.argv[1]), Path(sys.argv[2])))
"""


def test_300_mb_upload_keeps_memory_flat(tmp_path: Path) -> None:
    """Uploading 300 MB raises the peak RSS of client plus sandbox by less than 40 MB."""
    big, small = tmp_path / "big.wav", tmp_path / "small.wav"
    digest = write_wav(big, UPLOAD_BYTES)
    write_wav(small, 4 * (1 << 20))
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(big), str(small)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["sha256"] == digest
    assert result["size"] == result["content_length"] == big.stat().st_size
    growth_kb = result["after_kb"] - result["before_kb"]
    assert growth_kb < MAX_GROWTH_KB, f"peak RSS grew by {growth_kb} kB during the upload"
