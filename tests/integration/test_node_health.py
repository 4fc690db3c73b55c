"""Node failures on a real cluster: Finaud, NodeChangeState, prologue and epilogue.

The cluster runs the fast test timers (Finaud every 2 s, 2 s to answer), so a
dead or frozen node must be ``Suspected`` within two periods plus a margin.
"""

from __future__ import annotations

import signal
import time

import pytest

from tests.cluster import LocalCluster

DETECTION = 15.0  # two Finaud periods, the answer timeout, a NodeChangeState cycle, and a margin


def on(host: str) -> tuple[str, str]:
    return ("-p", f"network_address = '{host}'")


def host_states(cluster: LocalCluster, host: str) -> set[str]:
    return cluster.resource_states().get(host, set())


def wait_host(cluster: LocalCluster, host: str, state: str, timeout: float = DETECTION) -> None:
    cluster.wait_until(lambda: host_states(cluster, host) == {state}, timeout, f"{host} {state}")


def event_hosts(cluster: LocalCluster, kind: str, job_id: int | None = None) -> set[str]:
    sql = (
        "SELECT h.hostname FROM event_logs e JOIN event_log_hostnames h ON h.event_id = e.event_id "
        "WHERE e.type = :kind" + ("" if job_id is None else " AND e.job_id = :job")
    )
    return {row[0] for row in cluster.query(sql, kind=kind, job=job_id)}


def job_hosts(cluster: LocalCluster, job_id: int) -> set[str]:
    rows = cluster.query(
        "SELECT r.network_address FROM jobs j JOIN assigned_resources a ON a.moldable_job_id = j.assigned_moldable_job "
        "JOIN resources r ON r.resource_id = a.resource_id WHERE j.job_id = :id",
        id=job_id,
    )
    return {row[0] for row in rows}


@pytest.fixture(scope="module")
def cluster(cluster_factory):  # type: ignore[no-untyped-def]
    return cluster_factory(nodes=2, cores=1)


def _lose_node(cluster: LocalCluster, stop: bool) -> None:
    """Kill -9 (or freeze) node1 while it runs a job; node2's job must go on."""
    victim = cluster.oarsub(*on("node1"), "sleep 120")
    bystander = cluster.oarsub(*on("node2"), "sleep 120")
    cluster.wait_for([victim, bystander], ("Running",), timeout=20)
    cluster.signal_process("node1", signal.SIGSTOP if stop else signal.SIGKILL)
    try:
        wait_host(cluster, "node1", "Suspected")
        cluster.wait_for(victim, ("Error",), timeout=5)
        assert "node1" in event_hosts(cluster, "FINAUD_ERROR")
        assert event_hosts(cluster, "NODE_FAILURE", victim) == {"node1"}
        assert "node1" in cluster.job(victim)["message"]
        assert cluster.state(bystander) == "Running"
        assert host_states(cluster, "node2") == {"Alive"}
        assert cluster.scalar("SELECT finaud_decision FROM resources WHERE network_address = 'node1'") == "YES"
    finally:
        if stop:
            cluster.signal_process("node1", signal.SIGCONT)
        else:
            cluster.restart_process("node1")
    wait_host(cluster, "node1", "Alive", timeout=30)
    assert "node1" in event_hosts(cluster, "FINAUD_RECOVER")
    assert cluster.run("oardel", str(bystander)).returncode == 0
    cluster.wait_for(bystander, timeout=20)


def test_killed_node_worker_is_suspected_and_its_job_fails(cluster: LocalCluster) -> None:
    _lose_node(cluster, stop=False)


def test_frozen_node_worker_is_detected_the_same_way(cluster: LocalCluster) -> None:
    _lose_node(cluster, stop=True)


def test_idempotent_job_on_a_dying_node_runs_again_elsewhere(cluster: LocalCluster) -> None:
    marker = cluster.workdir / "idempotent.started"
    blocker = cluster.oarsub(*on("node2"), "sleep 120")
    cluster.wait_for(blocker, ("Running",), timeout=20)
    # the first run sleeps; the resubmitted one finds the marker and ends at once
    job = cluster.oarsub("-t", "idempotent", f"test -e {marker} || {{ touch {marker}; sleep 120; }}")
    cluster.wait_for(job, ("Running",), timeout=20)
    assert job_hosts(cluster, job) == {"node1"}
    assert cluster.run("oardel", str(blocker)).returncode == 0
    cluster.wait_for(blocker, timeout=20)
    cluster.kill_process("node1")
    try:
        cluster.wait_for(job, ("Error",), timeout=DETECTION)
        again = cluster.wait_until(
            lambda: cluster.scalar("SELECT job_id FROM jobs WHERE resubmit_job_id = :id", id=job), 10, "resubmission"
        )
        assert cluster.wait_for(again, timeout=30) == {again: "Terminated"}
        assert job_hosts(cluster, again) == {"node2"}
        assert "RESUBMIT_JOB_AUTOMATICALLY" in cluster.events(job)
    finally:
        cluster.restart_process("node1")
    wait_host(cluster, "node1", "Alive", timeout=30)


def test_node_being_withdrawn_that_dies_does_not_keep_its_job(cluster: LocalCluster) -> None:
    job = cluster.oarsub(*on("node1"), "sleep 120")
    cluster.wait_for(job, ("Running",), timeout=20)
    assert cluster.run("oarnodesetting", "-s", "Absent", "-h", "node1").returncode == 0
    cluster.kill_process("node1")
    try:
        cluster.wait_for(job, ("Error",), timeout=DETECTION)
        assert event_hosts(cluster, "NODE_FAILURE", job) == {"node1"}
        wait_host(cluster, "node1", "Absent", timeout=10)
    finally:
        cluster.restart_process("node1")
    assert cluster.run("oarnodesetting", "-s", "Alive", "-h", "node1").returncode == 0
    wait_host(cluster, "node1", "Alive", timeout=10)


PROLOGUE = """#!/bin/sh
grep -q node1 "$OAR_NODEFILE" && { echo "no scratch space on node1" >&2; exit 3; }
exit 0
"""
EPILOGUE = """#!/bin/sh
grep -q node2 "$OAR_NODEFILE" && { echo "cleanup failed on node2" >&2; exit 4; }
exit 0
"""


def test_failing_prologue_and_epilogue_suspect_the_node(cluster_factory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    prologue, epilogue = tmp_path / "prologue", tmp_path / "epilogue"
    for path, text in ((prologue, PROLOGUE), (epilogue, EPILOGUE)):
        path.write_text(text)
        path.chmod(0o755)
    cluster = cluster_factory(nodes=2, cores=1, OAR_PROLOGUE=str(prologue), OAR_EPILOGUE=str(epilogue))
    first = cluster.oarsub(*on("node1"), "true")
    assert cluster.wait_for(first, timeout=20) == {first: "Error"}
    assert event_hosts(cluster, "PROLOGUE_ERROR", first) == {"node1"}
    wait_host(cluster, "node1", "Suspected", timeout=10)
    assert cluster.scalar("SELECT finaud_decision FROM resources WHERE network_address = 'node1'") == "NO"

    second = cluster.oarsub("true")
    assert cluster.wait_for(second, timeout=20) == {second: "Terminated"}
    assert job_hosts(cluster, second) == {"node2"}
    assert event_hosts(cluster, "EPILOGUE_ERROR", second) == {"node2"}
    wait_host(cluster, "node2", "Suspected", timeout=10)
    # suspected for a reason of their own: Finaud, which hears them answer, leaves them so
    time.sleep(5)
    assert host_states(cluster, "node1") == {"Suspected"} and host_states(cluster, "node2") == {"Suspected"}
