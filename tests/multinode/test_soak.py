"""Crash soak with several nodes: SIGKILL random nodes at random moments while three of them
share one folder and one PostgreSQL database; each killed node is restarted (at once, or
after a while so its lease runs out and another node takes its work over).

Sizes come from the environment, as for the one-node soak (tests/reliability/test_crash.py);
the defaults keep a CI run under about two minutes::

    INGESTD_SOAK_CYCLES=200 INGESTD_SOAK_FILES=500 scripts/test tests/multinode/test_soak.py -s

``INGESTD_SOAK_MACHINE_LOCAL=0``: work dirs every node can read (see `MACHINE_LOCAL`);
``INGESTD_SOAK_CYCLES``: kills (default 30); ``INGESTD_SOAK_FILES``: files (default 100, two
fifths of them parts of four-part conversations); ``INGESTD_SOAK_NODES``: nodes (default 3);
``INGESTD_SOAK_FAULTS=0``: kills only (by default some upload answers are lost as well);
``INGESTD_SOAK_SEED`` replays a run's schedule; ``INGESTD_SOAK_OUT=PATH`` also writes the
figures there (they always go to ``soak-figures.json`` in the test's folder).
"""

from __future__ import annotations

import json
import os
import random
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.multinode.support import (
    LEASE_SECONDS,
    by_conversation,
    check_once_in_order,
    drop,
    make_batch,
)

CYCLES = int(os.environ.get("INGESTD_SOAK_CYCLES", "30"))
FILES = int(os.environ.get("INGESTD_SOAK_FILES", "100"))
NODES = int(os.environ.get("INGESTD_SOAK_NODES", "3"))
FAULTS = os.environ.get("INGESTD_SOAK_FAULTS", "1") != "0"
SEED = int(os.environ.get("INGESTD_SOAK_SEED", str(random.SystemRandom().randrange(1 << 31))))
MACHINE_LOCAL = os.environ.get("INGESTD_SOAK_MACHINE_LOCAL", "1") != "0"
"""Each node with a work dir of its own (tests/multinode/support.py `MachineLocal`), as on
machines of their own: a takeover must make a transcoded copy or fetch insights again."""
PARTS = 4


def write_figures(figures: dict, root: Path) -> None:
    targets = [root / "soak-figures.json"]
    if out := os.environ.get("INGESTD_SOAK_OUT"):
        targets.append(Path(out).expanduser())
    for target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")


@pytest.mark.slow(seconds=50)
def test_random_sigkills_of_random_nodes_lose_double_and_reorder_nothing(
    make_cluster, sandbox, tmp_path
) -> None:
    rng = random.Random(SEED)
    meetings = max(1, FILES * 2 // 5 // PARTS)
    batch = make_batch(tmp_path / "staging", FILES - meetings * PARTS, meetings, PARTS)
    cluster = make_cluster(NODES, limit=3, machine_local=MACHINE_LOCAL)
    # Arrival units: a single file, or a whole meeting (its parts one after another, in
    # order), spread over the first 70 % of the cycles.
    units = list(by_conversation(batch).values())
    rng.shuffle(units)
    arrival_cycles = max(1, int(CYCLES * 0.7))
    per_cycle = -(-len(units) // arrival_cycles)
    cluster.start()
    down_until: dict[str, float] = {}
    held_at_kills: Counter[str] = Counter()
    kills_holding_work = 0
    kill_log: list[dict] = []
    began = time.monotonic()
    for cycle in range(CYCLES):
        now = time.monotonic()
        for name, until in list(down_until.items()):
            if until <= now or len(down_until) == len(cluster.nodes):  # none would be left
                cluster.nodes[name].start()
                del down_until[name]
        for unit in units[cycle * per_cycle : (cycle + 1) * per_cycle]:
            for arrival in unit:
                drop(arrival, cluster.inbox)
        if FAULTS and rng.random() < 0.25:
            sandbox.faults.arm({"kind": "drop_after_upload", "times": 1, "route": "submit"})
        time.sleep(rng.uniform(0.6, 2.4))
        victim = rng.choice(cluster.running())
        held = [c for c in cluster.claims() if c["node"] == victim.name]
        victim.kill()
        kill_log.append(
            {
                "at": time.time(),
                "node": victim.name,
                "held": {c["recording_id"]: c["state"] for c in held},
            }
        )
        held_at_kills.update(c["state"] for c in held)
        kills_holding_work += bool(held)
        # Back at once (its own claims wait for it), or after its lease ran out (the
        # others take its work over); now and then two nodes are down at once.
        downtime = 0.0 if rng.random() < 0.5 else rng.uniform(0.5, 2 * LEASE_SECONDS)
        down_until[victim.name] = time.monotonic() + downtime
    for name in list(down_until):
        cluster.nodes[name].start()
    cycle_seconds = time.monotonic() - began
    for node in cluster.nodes.values():
        node.wait_ready()
    figures = check_once_in_order(cluster, batch, timeout=120 + FILES * 0.5)
    drained = time.monotonic() - began
    for node in cluster.nodes.values():
        assert node.stop() == 0, f"{node.name} stops cleanly:\n{node.log_tail()}"
    adopted = cluster.events("work_adopted")
    leftovers = sorted(
        str(p.relative_to(cluster.root))
        for node in cluster.nodes.values()
        for p in (node.work_dir / "transcode").glob("*")
    )
    figures.update(
        seed=SEED,
        nodes=NODES,
        machine_local=MACHINE_LOCAL,
        kills=sum(n.kills for n in cluster.nodes.values()),
        kills_by_node={n.name: n.kills for n in cluster.nodes.values()},
        kills_while_holding_work=kills_holding_work,
        claim_states_at_kills=dict(held_at_kills),
        work_adopted=len(adopted),
        work_adopted_by_state=dict(Counter(e.get("state") for e in adopted)),
        lease_lost=len(cluster.events("lease_lost")),
        transcoding_again=len(cluster.events("transcoding_again")),
        insights_fetched_again=len(cluster.events("insights_fetched_again")),
        faults_fired=sandbox.stats()["faults_fired"],
        cycle_phase_seconds=round(cycle_seconds, 1),
        until_all_done_seconds=round(drained, 1),
        work_files_left=leftovers,
    )
    print("\nmulti-node soak figures: " + json.dumps(figures, sort_keys=True))
    write_figures(figures, cluster.root)
    (cluster.root / "soak-kills.json").write_text(json.dumps(kill_log, indent=1) + "\n")
    assert figures["kills"] == CYCLES
