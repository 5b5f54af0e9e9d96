"""Two nodes on a private PostgreSQL server that is stopped mid-run for longer than the
lease and started again: both wait, reconnect and finish everything, once each and in
order; every lease ran out meanwhile, yet each node keeps its own work."""

from __future__ import annotations

import time

from ingestd.testing import wait_for
from tests.multinode.support import LEASE_SECONDS, check_once_in_order, created, drop, make_batch
from tests.privatepg import private_postgres  # noqa: F401 - a fixture


def test_two_nodes_wait_for_a_restarted_server_and_lose_or_double_nothing(
    make_cluster,
    sandbox,
    tmp_path,
    private_postgres,  # noqa: F811
) -> None:
    server = private_postgres
    cluster = make_cluster(2, limit=3, url=server.url(password=True))
    batch = make_batch(tmp_path / "staging", singles=10, meetings=2, parts=3)
    sandbox.set_options({"job_seconds": 1.0})
    cluster.start()
    for arrival in batch:
        drop(arrival, cluster.inbox)
    wait_for(lambda: len(created(sandbox)) >= 3, 60, "jobs at the sandbox")
    server.stop()
    for node in cluster.nodes.values():
        wait_for(
            lambda node=node: node.where("state_database_unreachable"),
            60,
            f"{node.name} to say the database is gone",
        )
    time.sleep(LEASE_SECONDS + 1)  # down for longer than the lease, jobs running meanwhile
    assert all(node.running for node in cluster.nodes.values()), "the nodes wait, alive"
    server.start()
    for node in cluster.nodes.values():
        wait_for(
            lambda node=node: node.where("state_database_reconnected"),
            60,
            f"{node.name} to reconnect",
        )
    sandbox.set_options({"job_seconds": 0.3})
    figures = check_once_in_order(cluster, batch, timeout=120)
    assert figures["appends_sent_again"] == 0, figures
    # every lease aged while the server was down; each node keeps its own work
    assert not cluster.events("work_adopted"), cluster.events("work_adopted")
    assert not cluster.events("lease_lost"), cluster.events("lease_lost")
    for node in cluster.nodes.values():
        assert node.stop() == 0, node.log_tail()
