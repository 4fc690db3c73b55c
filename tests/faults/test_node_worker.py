"""A node worker killed with SIGKILL while jobs run on it.

Its jobs run under keepers of their own sessions and outlive it. Started
again, the worker adopts what its predecessor left and reports each end
(the head may have ended some meanwhile, taking the node for dead, and sent
the node their kills), so none stays Running forever and none starts again.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.faults.conftest import FAST
from tests.faults.counting import count, launch_command

pytestmark = pytest.mark.cluster


def test_node_worker_killed_with_jobs(cluster_factory, launches: Path) -> None:  # type: ignore[no-untyped-def]
    cluster = cluster_factory(nodes=2, cores=2, **FAST)
    command = launch_command(launches, 20)
    accepted = [cluster.oarsub("-l", "/core=1", command) for _ in range(4)]
    cluster.wait_for(accepted, ["Running"], timeout=30)
    cluster.kill_process("node1")
    time.sleep(1)
    cluster.restart_process("node1")
    counts = count("node worker kill -9 with jobs", cluster, accepted, launches, timeout=60)
    counts.check()
    states = {cluster.state(job_id) for job_id in accepted}
    assert states <= {"Terminated", "Error"}
