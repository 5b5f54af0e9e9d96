"""Two nodes share one batch; a node that goes silent while it holds work (paused with
SIGSTOP, or cut off from PostgreSQL) loses it to the other once its lease runs out, and when
it comes back its stale writes change nothing: it logs ``lease_lost`` and drops the work.
Counted at the sandbox: nothing doubled, nothing lost, parts in order."""

from __future__ import annotations

import time
from typing import Any

from ingestd.testing import wait_for
from tests.multinode.proxy import TcpProxy
from tests.multinode.support import (
    LEASE_SECONDS,
    TERMINAL,
    Cluster,
    Node,
    check_once_in_order,
    created,
    drop,
    make_batch,
)
from tests.slack.fake import PROXY_VARIABLES, serve_fake_slack


def _held(cluster: Cluster, node: Node, states: tuple[str, ...]) -> list[dict[str, Any]]:
    return [c for c in cluster.claims() if c["node"] == node.name and c["state"] in states]


def _holding_a_job(cluster: Cluster, node: Node) -> dict[str, Any]:
    """A claim of `node` on a recording whose job runs at the sandbox."""
    return wait_for(lambda: _held(cluster, node, ("submitted",)), 60, f"{node.name} holding a job")[
        0
    ]


def _silence_and_take_over(
    cluster: Cluster, sandbox: Any, held: dict[str, Any], go_silent, come_back
) -> dict[str, Any]:
    """Silence the node holding `held`; wait for the other node to adopt that recording and
    finish it; bring the silent node back and wait for its ``lease_lost``. Returns what the
    silent node logged about the recording once it was back."""
    silent = cluster.nodes[held["node"]]
    [other] = [n for n in cluster.nodes.values() if n is not silent]
    rid = held["recording_id"]
    go_silent()
    silenced = time.monotonic()
    adopted = wait_for(
        lambda: other.where("work_adopted", recording_id=rid),
        LEASE_SECONDS + 30,
        f"{other.name} to adopt recording {rid}",
    )
    took = time.monotonic() - silenced
    assert adopted[0]["from_node"] == silent.name, adopted
    assert took >= LEASE_SECONDS - 1, f"taken over {took:.1f} s after silence: before the lease"
    wait_for(
        lambda: cluster.states().get(held["relpath"]) in TERMINAL,
        60,
        f"{other.name} to finish {held['relpath']}",
    )
    sandbox.set_options({"job_seconds": 0.3})
    before = len(silent.events())
    come_back()
    # Its other claims may be found lost first (a heartbeat's renewal, another write): wait
    # for this recording's own lease_lost, not the first one logged.
    wait_for(
        lambda: [
            e
            for e in silent.events()[before:]
            if e.get("event") == "lease_lost" and e.get("recording_id") == rid
        ],
        60,
        f"{silent.name} to log lease_lost for recording {rid} once back",
    )
    after = [e for e in silent.events()[before:] if e.get("recording_id") == rid]
    written = [e for e in after if e.get("event") == "state_changed"]
    assert not written, f"{silent.name} changed the state of {rid} after losing it: {written}"
    return {"adopted_after_s": round(took, 1), "logged_once_back": after}


def test_a_paused_node_loses_its_work_and_its_stale_writes_change_nothing(
    make_cluster, sandbox, tmp_path
) -> None:
    """SIGSTOP for longer than the lease; the other node adopts; SIGCONT."""
    cluster = make_cluster(2, limit=3)
    a, b = cluster.nodes.values()
    batch = make_batch(tmp_path / "staging", singles=6, meetings=1, parts=3)
    sandbox.set_options({"job_seconds": 3.0})  # long enough to be caught holding a job
    cluster.start("node-a")
    for arrival in batch:
        drop(arrival, cluster.inbox)
    cluster.start("node-b")
    _silence_and_take_over(cluster, sandbox, _holding_a_job(cluster, a), a.pause, a.resume)
    check_once_in_order(cluster, batch, timeout=120)
    assert a.running, "a lost lease drops the work, not the daemon"
    for node in (a, b):
        assert node.stop() == 0, node.log_tail()


def test_a_node_cut_off_from_postgres_loses_its_work_and_comes_back(
    make_cluster, sandbox, tmp_path, state_url
) -> None:
    """node-a reaches the database through a proxy that the test stops for longer than the
    lease and starts again; node-b goes straight to it."""
    with TcpProxy() as proxy:
        cluster = make_cluster(2, limit=3)
        a = cluster.nodes["node-a"]
        b = cluster.nodes["node-b"]
        a.state_url = state_url.replace(":5432/", f":{proxy.port}/")
        batch = make_batch(tmp_path / "staging", singles=6, meetings=1, parts=3)
        sandbox.set_options({"job_seconds": 3.0})
        cluster.start("node-a")
        for arrival in batch:
            drop(arrival, cluster.inbox)
        cluster.start("node-b")
        held = _holding_a_job(cluster, a)
        _silence_and_take_over(cluster, sandbox, held, proxy.stop, proxy.start)
        assert a.where("state_database_unreachable"), "it noticed"
        check_once_in_order(cluster, batch, timeout=120)
        assert a.running, "a lost lease drops the work, not the daemon"
        for node in (a, b):
            assert node.stop() == 0, node.log_tail()


def test_a_node_paused_while_its_upload_lands_loses_it_to_a_lookup_not_a_second_post(
    make_cluster, sandbox, tmp_path
) -> None:
    """Paused mid-upload (the sandbox takes 4 s before it reads the body, so the node is
    caught in ``submitting`` and the job is created while it sleeps): the other node takes
    the recording over with its outcome unknown, finds the conversation by the upload's tag,
    and sends nothing again."""
    cluster = make_cluster(2, limit=3)
    [arrival] = make_batch(tmp_path / "staging", singles=1, meetings=0, parts=0, flac_every=0)
    cluster.start()
    sandbox.faults.arm({"kind": "latency", "seconds": 4.0, "times": 1, "route": "submit"})
    drop(arrival, cluster.inbox)
    held = wait_for(
        lambda: (
            [c for c in cluster.claims() if c["state"] == "submitting"]
            if any(s["outcome"] == "receiving" for s in sandbox.submissions())
            else []
        ),
        60,
        "a node holding the recording while its upload waits at the sandbox",
    )[0]
    silent = cluster.nodes[held["node"]]
    seen = _silence_and_take_over(cluster, sandbox, held, silent.pause, silent.resume)
    figures = check_once_in_order(cluster, [arrival], timeout=60)
    assert figures["jobs_created"] == 1 and len(sandbox.submissions()) == 1, sandbox.submissions()
    [other] = [n for n in cluster.nodes.values() if n is not silent]
    adopted = other.where("work_adopted", recording_id=held["recording_id"])
    assert adopted[0]["state"] == "submitting", adopted
    assert other.where("state_changed", recording_id=held["recording_id"], reconciled=True)
    assert silent.running, seen
    for node in cluster.nodes.values():
        assert node.stop() == 0, node.log_tail()


def test_a_node_killed_while_delivering_leaves_the_delivery_to_another(
    make_cluster, sandbox, tmp_path, monkeypatch
) -> None:
    """SIGKILL the node whose Slack post hangs (the recording in ``delivering``): once its
    lease runs out the other node delivers. Its work dir is not the dead node's (machine-
    local), so the insights that node fetched there are not at hand: it fetches them again
    and the outbox goes on (the README's takeover table)."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    with serve_fake_slack() as slack:
        cluster = make_cluster(2, limit=3)
        cluster.overrides["sinks"] = [
            {"type": "slack", "webhook_url": slack.webhook_url, "timeout_seconds": 60},
        ]
        [arrival] = make_batch(tmp_path / "staging", singles=1, meetings=0, parts=0)
        cluster.start()
        slack.delay_seconds = 30  # the post hangs: the node holds the recording delivering
        drop(arrival, cluster.inbox)
        [held] = wait_for(
            lambda: [c for c in cluster.claims() if c["state"] == "delivering"],
            60,
            "a node holding the recording in delivering",
        )
        silent = cluster.nodes[held["node"]]
        [other] = [n for n in cluster.nodes.values() if n is not silent]
        silent.kill()
        slack.delay_seconds = 0
        adopted = wait_for(
            lambda: other.where("work_adopted", recording_id=held["recording_id"]),
            LEASE_SECONDS + 30,
            f"{other.name} to adopt the delivery",
        )
        assert adopted[0]["state"] == "delivering", adopted
        states = cluster.wait_terminal([arrival.relpath], 60)
        assert states[arrival.relpath] == "done", (
            f"{states}\n{[e for e in other.events() if e.get('level') == 'error']}"
        )
        assert len(created(sandbox)) == 1, "delivered without a second job"
        assert other.where("insights_fetched_again", recording_id=held["recording_id"])
        wait_for(lambda: slack.posted, 30, "the Slack post")
        assert other.stop() == 0
