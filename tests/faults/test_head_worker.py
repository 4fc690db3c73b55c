"""The head worker killed with SIGKILL in the middle of a flood of submissions.

Only ids the head answered with count as accepted: a submission the head was
handling when it died is not acknowledged late (it could insert the job
twice), so its client is told it failed. Every accepted job must end, once.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.faults.conftest import FAST
from tests.faults.counting import count, flood_ids, launch_command, start_flood, wait_submitted

pytestmark = pytest.mark.cluster

FLOOD = 500


def test_head_killed_mid_flood(cluster_factory, launches: Path) -> None:  # type: ignore[no-untyped-def]
    cluster = cluster_factory(nodes=2, cores=32, cpus=2, **FAST)
    flood = start_flood(cluster, FLOOD, launch_command(launches))
    wait_submitted(cluster, FLOOD // 4)
    cluster.kill_process("head")
    time.sleep(1)
    cluster.restart_process("head")
    accepted = flood_ids(flood)
    counts = count("head worker kill -9 mid-flood", cluster, accepted, launches, timeout=120)
    assert counts.accepted >= FLOOD // 4
    counts.check()
