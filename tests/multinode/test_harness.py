"""The harness itself, on one node: a mapped batch on PostgreSQL done once each and in order,
the node's work dir machine-local; the TCP proxy cuts a connection and lets a new one
through after it is started again."""

from __future__ import annotations

import psycopg
import pytest

from tests.multinode.proxy import TcpProxy
from tests.multinode.support import check_once_in_order, drop, make_batch


def test_one_node_on_postgres_does_a_mapped_batch_once_and_in_order(make_cluster, tmp_path) -> None:
    cluster = make_cluster(1)
    batch = make_batch(tmp_path / "staging", singles=6, meetings=2, parts=3)
    cluster.start()
    for arrival in batch:
        drop(arrival, cluster.inbox)
    figures = check_once_in_order(cluster, batch, timeout=90)
    assert figures["jobs_created"] == 12 and figures["puts"] == 4, figures
    assert figures["insights_files_by_node"].keys() == {"node-a"}
    node = cluster.nodes["node-a"]
    assert list((node.work_dir / "insights").glob("*.json")), "its work files are its own"
    assert not list(cluster.work_dir.iterdir()), "and not in the path all nodes configure"
    assert cluster.nodes["node-a"].stop() == 0


def test_the_proxy_cuts_connections_and_lets_new_ones_through_again(state_url) -> None:
    with TcpProxy() as proxy:
        url = state_url.replace(":5432/", f":{proxy.port}/")
        with psycopg.connect(url, autocommit=True) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
            proxy.stop()
            with pytest.raises(psycopg.OperationalError):
                conn.execute("SELECT 1")
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(url, connect_timeout=2)
        proxy.start()
        with psycopg.connect(url, autocommit=True) as conn:
            assert conn.execute("SELECT 2").fetchone() == (2,)
        assert proxy.connections == 2
