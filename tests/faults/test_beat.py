"""Beat killed and started again; two beats running at once by mistake.

Beat only sends messages: a missed tick delays work, a doubled tick must not
run a module twice at once. Almighty records every cycle's start and end
under its lock, so two overlapping cycles would show in that record.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import redis

from tests.cluster import LocalCluster
from tests.faults.conftest import FAST
from tests.faults.counting import count, launch_command

pytestmark = pytest.mark.cluster

CYCLES = "oar:almighty:cycles"


def start_second_beat(cluster: LocalCluster) -> int:
    """Another beat with its own schedule file, as an admin starting one twice would."""
    from oar_celery.cluster import beat_argv, start
    from oar_celery.config import load_settings

    config = load_settings(cluster.env)
    argv = beat_argv(config)
    argv[argv.index("--schedule") + 1] = str(cluster.state_dir / "second-beat-schedule")
    saved = os.environ.copy()
    os.environ.clear()
    os.environ.update(cluster.env)
    try:
        process = start("beat2", argv, kind="beat2", log_dir=config.logs)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return process.pid


def overlapping_cycles(cluster: LocalCluster) -> list[tuple[dict, dict]]:
    entries = [json.loads(raw) for raw in redis.Redis.from_url(cluster.env["OAR_BROKER_URL"]).lrange(CYCLES, 0, -1)]
    entries.sort(key=lambda entry: entry["start"])
    return [(a, b) for a, b in zip(entries, entries[1:], strict=False) if b["start"] < a["end"]]


def test_beat_killed_and_restarted(cluster_factory, launches: Path) -> None:  # type: ignore[no-untyped-def]
    cluster = cluster_factory(nodes=2, cores=4, **FAST)
    command = launch_command(launches, 2)
    accepted = [cluster.oarsub("-l", "/core=1", command) for _ in range(6)]
    cluster.kill_process("beat")
    accepted += [cluster.oarsub("-l", "/core=1", command) for _ in range(6)]
    time.sleep(2)
    cluster.restart_process("beat")
    counts = count("beat kill -9 and restart", cluster, accepted, launches, timeout=60)
    counts.check()
    assert counts.finished == counts.accepted


def test_two_beats_never_run_a_cycle_twice_at_once(cluster_factory, launches: Path) -> None:  # type: ignore[no-untyped-def]
    cluster = cluster_factory(nodes=2, cores=4, OAR_SARKO_PERIOD="0.3", OAR_ALMIGHTY_TICK="0.3", **FAST)
    pid = start_second_beat(cluster)
    try:
        command = launch_command(launches, 1)
        accepted = [cluster.oarsub("-l", "/core=1", command) for _ in range(16)]
        counts = count("two beats at once", cluster, accepted, launches, timeout=60)
    finally:
        os.killpg(pid, 9)
    counts.check()
    cycles = redis.Redis.from_url(cluster.env["OAR_BROKER_URL"]).llen(CYCLES)
    assert cycles > 20, "the cycles were not recorded"
    assert not overlapping_cycles(cluster)
