"""Several nodes on one PostgreSQL database (issue 12): real daemons as subprocesses, a
database of their own per test (127.0.0.1:5432, dropped after; a server that is down fails
the test loudly), the sandbox in the test process counting every submission."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.multinode.support import Cluster
from tests.stores import create_database, drop_database


@pytest.fixture(autouse=True)
def _quick_jobs(sandbox: Any) -> None:
    """Short jobs; the account allows more than the daemons' limit, so the sandbox's peak
    shows whether the nodes together kept to their shared limit (a 429 would hide it)."""
    sandbox.set_options({"job_seconds": 0.3, "schedule_seconds": 0.02, "concurrency_limit": 20})


@pytest.fixture
def state_url() -> Iterator[str]:
    """A new database on 127.0.0.1:5432 for this test's nodes."""
    url = create_database()
    try:
        yield url
    finally:
        drop_database(url)


@pytest.fixture
def make_cluster(
    request: pytest.FixtureRequest, tmp_path: Path, sandbox: Any
) -> Iterator[Callable[..., Cluster]]:
    """``make_cluster(3, limit=3)``: nodes ``node-a``, ``node-b`` ... (not started) on this
    test's database (`state_url`, or the `url` given); every node still running at the end
    is killed. Every node has a work dir of its own at one path, as on machines of their
    own (`machine_local`; False: a folder per node, which every node can read)."""
    made: list[Cluster] = []

    def make(
        nodes: int, *, limit: int = 3, url: str | None = None, machine_local: bool = True
    ) -> Cluster:
        url = url or request.getfixturevalue("state_url")
        root = tmp_path / f"cluster-{len(made)}"
        cluster = Cluster(root, sandbox, url, limit=limit, machine_local=machine_local)
        for i in range(nodes):
            cluster.add(f"node-{chr(ord('a') + i)}")
        made.append(cluster)
        return cluster

    try:
        yield make
    finally:
        for cluster in made:
            cluster.stop_all()
