"""The daemon's garbage collector settings, once started (`tune_garbage_collector`)."""

from __future__ import annotations

import json
import subprocess
import sys

from ingestd.daemon import GC_YOUNG_THRESHOLD

PROBE = """
import gc, json
from ingestd.daemon import tune_garbage_collector
before = gc.get_threshold()
tune_garbage_collector()
print(json.dumps({"before": before, "after": gc.get_threshold(), "frozen": gc.get_freeze_count()}))
"""


def test_start_up_objects_are_frozen_and_young_collections_rarer() -> None:
    """In a fresh interpreter (this one's collector is pytest's business): everything
    imported so far is frozen out of later collections, and the young generation's
    threshold is raised while the older ones keep Python's defaults."""
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True
    ).stdout
    figures = json.loads(out)
    assert figures["before"][0] < GC_YOUNG_THRESHOLD
    assert figures["after"] == [GC_YOUNG_THRESHOLD, *figures["before"][1:]]
    assert figures["frozen"] > 10_000  # the daemon's modules, at least
