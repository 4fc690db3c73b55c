"""Resource administration on a real cluster: oarnodesetting, oarnodes, oarremoveresource."""

from __future__ import annotations

import json
import sys
import time

import pytest

from tests.cluster import LocalCluster


@pytest.fixture(scope="module")
def cluster(cluster_factory):  # type: ignore[no-untyped-def]
    return cluster_factory(nodes=2, cores=1)


def on(host: str) -> tuple[str, str]:
    return ("-p", f"network_address = '{host}'")


def states(cluster: LocalCluster, host: str) -> set[str]:
    return cluster.resource_states().get(host, set())


def hosts_of(cluster: LocalCluster, job_id: int) -> set[str]:
    rows = cluster.query(
        "SELECT r.network_address FROM jobs j JOIN assigned_resources a ON a.moldable_job_id = j.assigned_moldable_job "
        "JOIN resources r ON r.resource_id = a.resource_id WHERE j.job_id = :id",
        id=job_id,
    )
    return {row[0] for row in rows}


def setting(cluster: LocalCluster, *args: str) -> str:
    result = cluster.run("oarnodesetting", *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def refused(cluster: LocalCluster, command: str, *args: str) -> str:
    """The command fails with exactly one line on stderr; that line."""
    result = cluster.run(command, *args)
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0 and len(lines) == 1, (result.returncode, result.stderr)
    return lines[0]


def test_drained_node_finishes_its_job_and_gets_no_new_one(cluster: LocalCluster) -> None:
    running = cluster.oarsub(*on("node1"), "sleep 3")
    busy = cluster.oarsub(*on("node2"), "sleep 120")
    cluster.wait_for([running, busy], ("Running",), timeout=20)
    setting(cluster, "-d", "on", "-h", "node1")
    assert "(drain)" in cluster.run("oarnodes", "-s", "node1").stdout
    assert cluster.wait_for(running, timeout=20) == {running: "Terminated"}
    waiting = cluster.oarsub("true")
    time.sleep(3)
    assert cluster.state(waiting) == "Waiting"
    setting(cluster, "-d", "off", "-h", "node1")
    assert cluster.wait_for(waiting, timeout=20) == {waiting: "Terminated"}
    assert hosts_of(cluster, waiting) == {"node1"}
    assert cluster.run("oardel", str(busy)).returncode == 0
    cluster.wait_for(busy, timeout=20)


def test_job_goes_to_the_resource_lent_long_enough(cluster: LocalCluster) -> None:
    setting(cluster, "-h", "node1", "-p", f"available_upto={int(time.time()) + 120}")
    try:
        long = cluster.oarsub("-l", "nodes=1,walltime=1:00:00", "true")
        assert cluster.wait_for(long, timeout=20) == {long: "Terminated"}
        assert hosts_of(cluster, long) == {"node2"}
        short = cluster.oarsub(*on("node1"), "-l", "nodes=1,walltime=0:01:00", "true")
        assert cluster.wait_for(short, timeout=20) == {short: "Terminated"}
    finally:
        setting(cluster, "-h", "node1", "-p", "available_upto=2147483647")


def test_absent_waits_for_running_jobs_and_gets_no_job(cluster: LocalCluster) -> None:
    running = cluster.oarsub(*on("node1"), "sleep 4")
    cluster.wait_for(running, ("Running",), timeout=20)
    assert "waiting for jobs" in setting(cluster, "-s", "Absent", "-h", "node1")
    time.sleep(1)
    assert states(cluster, "node1") == {"Alive"} and cluster.state(running) == "Running"
    assert cluster.wait_for(running, timeout=20) == {running: "Terminated"}
    cluster.wait_until(lambda: states(cluster, "node1") == {"Absent"}, 10, "node1 Absent")
    pinned = cluster.oarsub(*on("node1"), "true")
    time.sleep(3)
    assert cluster.state(pinned) == "Waiting"
    setting(cluster, "-s", "Alive", "-h", "node1")
    assert cluster.wait_for(pinned, timeout=20) == {pinned: "Terminated"}
    logged = cluster.query("SELECT value FROM resource_logs WHERE attribute = 'state' ORDER BY resource_log_id")
    assert [row[0] for row in logged][-2:] == ["Absent", "Alive"]


def test_no_wait_frags_the_jobs_now(cluster: LocalCluster) -> None:
    running = cluster.oarsub(*on("node1"), "sleep 120")
    cluster.wait_for(running, ("Running",), timeout=20)
    assert "fragged" in setting(cluster, "-s", "Absent", "-n", "-h", "node1")
    assert cluster.wait_for(running, timeout=20) == {running: "Error"}
    cluster.wait_until(lambda: states(cluster, "node1") == {"Absent"}, 10, "node1 Absent")
    setting(cluster, "-m", "off", "-h", "node1")
    cluster.wait_until(lambda: states(cluster, "node1") == {"Alive"}, 10, "node1 Alive")


def test_only_dead_resources_can_be_removed(cluster: LocalCluster) -> None:
    node2 = cluster.scalar("SELECT resource_id FROM resources WHERE network_address = 'node2'")
    node1 = cluster.scalar("SELECT resource_id FROM resources WHERE network_address = 'node1'")
    assert "not Dead" in refused(cluster, "oarremoveresource", str(node1))
    setting(cluster, "-s", "Dead", "-r", str(node2))
    cluster.wait_until(lambda: states(cluster, "node2") == {"Dead"}, 10, "node2 Dead")
    assert "not Dead" in refused(cluster, "oarremoveresource", str(node2), str(node1))
    assert "unknown resource" in refused(cluster, "oarremoveresource", "999")
    assert cluster.scalar("SELECT count(*) FROM resources") == 2
    result = cluster.run("oarremoveresource", str(node2))
    assert result.returncode == 0 and f"resource {node2} removed" in result.stdout
    assert cluster.scalar("SELECT count(*) FROM resources") == 1
    assert "unknown host" in refused(cluster, "oarnodesetting", "-s", "Alive", "-h", "node2")


def test_bad_input_changes_nothing(cluster: LocalCluster) -> None:
    before = cluster.query("SELECT resource_id, state, next_state, drain FROM resources ORDER BY resource_id")
    assert "unknown host" in refused(cluster, "oarnodesetting", "-s", "Absent", "-h", "nosuch")
    assert "unknown host" in refused(cluster, "oarnodesetting", "-s", "Absent", "-h", "node1", "-h", "nosuch")
    assert "unknown resource" in refused(cluster, "oarnodesetting", "-s", "Absent", "-r", "999")
    assert "bad state" in refused(cluster, "oarnodesetting", "-s", "Broken", "-h", "node1")
    assert "bad state" in refused(cluster, "oarnodesetting", "-s", "Suspected", "-h", "node1")
    as_alice = (
        "from oar_celery.client import api\n"
        "try:\n    api.node_setting(user='alice', hosts=['node1'], state='Absent')\n"
        "except Exception as error:\n    print(error)\n"
    )
    result = cluster.run(sys.executable, "-c", as_alice)
    assert "alice" in result.stdout, result.stderr
    assert "unknown host" in refused(cluster, "oarnodes", "nosuch")
    after = cluster.query("SELECT resource_id, state, next_state, drain FROM resources ORDER BY resource_id")
    assert before == after


def test_oarnodes_views(cluster: LocalCluster) -> None:
    assert cluster.run("oarnodes", "-l").stdout.split() == ["node1"]
    """OAR3's -l, -s (a block per host), -S (node, status, running jobs, free resources), -J (a list), -e."""
    states_view = cluster.run("oarnodes", "-s").stdout
    assert states_view.splitlines()[0] == "node1" and states_view.splitlines()[1].split()[1] == "Alive"
    summary = cluster.run("oarnodes", "-S").stdout
    assert summary.splitlines()[1].split() == ["node", "status", "running", "jobs", "free", "resources"]
    assert isinstance(json.loads(cluster.run("oarnodes", "-J").stdout), list)
    assert cluster.run("oarnodes", "node1", "-e").returncode == 0
