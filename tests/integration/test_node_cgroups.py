"""Jobs confined to their cores, cleaned up by cgroup, kept across node worker restarts: a real cluster.

One cluster of 2 nodes x 4 cores on this machine's CPUs (the cores' cpusets
wrap around them: 0, 1, 0, 1 on each node), real cgroups. Finaud is given
time (5 s periods, 10 s to answer) so that a node worker restarted within a
few seconds is not taken for a dead node. The last test stops the cluster.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from oar_celery.node.cgroup import JobCgroup
from oar_celery.node.jobdir import JobDir
from tests.cluster import LocalCluster

pytestmark = pytest.mark.timeout(120)

CPUS = "nproc > cpus.$OAR_JOB_ID; grep Cpus_allowed_list /proc/self/status >> cpus.$OAR_JOB_ID"


@pytest.fixture(scope="module")
def cluster(cluster_factory):  # type: ignore[no-untyped-def]
    return cluster_factory(nodes=2, cores=4, OAR_FINAUD_PERIOD="5", OAR_FINAUD_TIMEOUT="10")


def on(host: str) -> tuple[str, str]:
    return ("-p", f"network_address = '{host}'")


def job_dir(cluster: LocalCluster, host: str, job_id: int) -> JobDir:
    return JobDir.of(cluster.state_dir / "nodes", host, job_id)


def seen_cpus(cluster: LocalCluster, job_id: int) -> tuple[int, str]:
    """``nproc`` and ``Cpus_allowed_list`` as the job saw them."""
    nproc, allowed = (cluster.workdir / f"cpus.{job_id}").read_text().splitlines()
    return int(nproc), allowed.split(":", 1)[1].strip()


def leftovers(marker: str) -> list[int]:
    """Processes whose command line is exactly ``sleep <marker>``."""
    found = subprocess.run(["pgrep", "-f", f"^sleep {marker}$"], capture_output=True, text=True).stdout.split()
    return [int(pid) for pid in found]


def test_jobs_see_only_the_cpus_of_their_cores(cluster: LocalCluster) -> None:
    first, second = (cluster.oarsub(*on("node1"), "-l", "/core=1", f"{CPUS}; sleep 2") for _ in range(2))
    pair = cluster.oarsub(*on("node2"), "-l", "/core=2", f"{CPUS}; sleep 2")
    cluster.wait_for([first, second, pair], ("Terminated",), timeout=30)
    whole = cluster.oarsub("-l", "/nodes=1", CPUS)
    cluster.wait_for(whole, ("Terminated",), timeout=30)
    assert seen_cpus(cluster, first)[0] == seen_cpus(cluster, second)[0] == 1
    assert {seen_cpus(cluster, first)[1], seen_cpus(cluster, second)[1]} == {"0", "1"}  # one CPU each
    assert seen_cpus(cluster, pair) == (2, "0-1")
    assert seen_cpus(cluster, whole) == (2, "0-1")


def test_nothing_a_job_detaches_outlives_it(cluster: LocalCluster) -> None:
    ended = cluster.oarsub("-l", "/core=1", "setsid sleep 31001 & sleep 0.5")
    deleted = cluster.oarsub("-l", "/core=1", "setsid sleep 31002 & sleep 100")
    timed_out = cluster.oarsub("-l", "/core=1,walltime=0:0:3", "setsid sleep 31003 & sleep 100")
    cluster.wait_for([deleted, timed_out], ("Running",), timeout=30)
    cluster.wait_until(lambda: leftovers("31002") and leftovers("31003"), 10, "detached sleeps started")
    assert cluster.run("oardel", str(deleted)).returncode == 0
    cluster.wait_for([ended, deleted, timed_out], timeout=40)
    assert cluster.state(ended) == "Terminated"
    for marker in ("31001", "31002", "31003"):
        assert leftovers(marker) == [], marker


def _cpu_ticks(cgroup: JobCgroup) -> int:
    total = 0
    for pid in cgroup.pids():
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total


def test_a_suspended_job_is_frozen_and_uses_no_cpu(cluster: LocalCluster) -> None:
    job_id = cluster.oarsub(*on("node2"), "-l", "/core=1", "while :; do :; done")
    cluster.wait_for(job_id, ("Running",), timeout=30)
    cgroup = JobCgroup.from_text(job_dir(cluster, "node2", job_id).cgroup_text)
    assert cgroup is not None
    assert cluster.run("oarhold", "-r", str(job_id)).returncode == 0
    cluster.wait_for(job_id, ("Suspended",), timeout=20)
    cluster.wait_until(cgroup.frozen, 5, "job frozen")
    before = _cpu_ticks(cgroup)
    time.sleep(1.5)
    assert _cpu_ticks(cgroup) == before
    assert cluster.run("oarresume", str(job_id)).returncode == 0
    cluster.wait_for(job_id, ("Running",), timeout=20)
    cluster.wait_until(lambda: _cpu_ticks(cgroup) > before, 10, "job running again")
    assert cluster.run("oardel", str(job_id)).returncode == 0
    cluster.wait_for(job_id, timeout=30)
    assert not cgroup.exists()


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "sigterm"])
def test_a_restarted_node_worker_keeps_its_jobs(cluster: LocalCluster, signum: int) -> None:
    """Two jobs outlive the worker's restart; two end while no worker runs, one with exit code 3."""
    long_jobs = [cluster.oarsub(*on("node1"), "-l", "/core=1", "sleep 10") for _ in range(2)]
    short_ok = cluster.oarsub(*on("node1"), "-l", "/core=1", "sleep 1")
    short_three = cluster.oarsub(*on("node1"), "-l", "/core=1", "sleep 1; exit 3")
    jobs = [*long_jobs, short_ok, short_three]
    cluster.wait_for(jobs, ("Running",), timeout=30)
    worker = cluster.processes()["node1"]
    os.kill(worker, signum)
    cluster.wait_until(lambda: not Path(f"/proc/{worker}").exists() or _zombie(worker), 20, "node1 worker stopped")
    cluster.wait_until(lambda: all(job_dir(cluster, "node1", j).exit_file.read_text() for j in jobs[2:]), 10,
                       "short jobs ended while node1 had no worker")
    cluster.restart_process("node1")
    cluster.wait_for(jobs, timeout=40)
    codes = {job_id: cluster.job(job_id)["exit_code"] for job_id in jobs}
    assert [codes[j] for j in jobs] == [0, 0, 0, 3 << 8]  # exit 3, kept as OAR's wait status: 768 (3,0,0)
    assert all(cluster.state(j) == "Terminated" for j in jobs)  # OAR: a job that ran to its end is Terminated


def _zombie(pid: int) -> bool:
    try:
        return re.search(r"\) Z ", Path(f"/proc/{pid}/stat").read_text()) is not None
    except OSError:
        return True


def test_stop_jobs_ends_every_job_of_a_node_and_leaves_its_worker_running(cluster: LocalCluster) -> None:
    jobs = [cluster.oarsub(*on("node2"), "-l", "/core=1", "setsid sleep 31100 & sleep 100") for _ in range(2)]
    cluster.wait_for(jobs, ("Running",), timeout=30)
    result = cluster.admin("worker", "node", "--hostname", "node2", "--stop-jobs", timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == "2 job(s) of node2 stopped", result
    cluster.wait_for(jobs, ("Error",), timeout=20)
    assert leftovers("31100") == []
    assert all("killed" in cluster.job(job_id)["message"] for job_id in jobs)
    again = cluster.oarsub(*on("node2"), "-l", "/core=1", "true")
    cluster.wait_for(again, ("Terminated",), timeout=30)  # the worker still serves the node


def test_a_job_is_held_to_the_memory_of_its_cores(cluster: LocalCluster) -> None:
    """OAR's ``mem`` property (MB per core): a job's cgroup allows its cores' sum, the kernel enforces it."""
    assert cluster.run("oarnodesetting", "-h", "node1", "-p", "mem=48").returncode == 0
    limit = ("cat /sys/fs/cgroup/memory$(sed -n 's/^[0-9]*:memory://p' /proc/self/cgroup)/memory.limit_in_bytes"
             " > mem.$OAR_JOB_ID")
    fits = cluster.oarsub(*on("node1"), "-l", "/core=2", f"{limit}; python3 -c 'b = b\"x\" * (32 << 20)'")
    too_big = cluster.oarsub(*on("node1"), "-l", "/core=1", f"{limit}; python3 -c 'b = b\"x\" * (256 << 20)'")
    cluster.wait_for([fits, too_big], timeout=60)
    assert int((cluster.workdir / f"mem.{fits}").read_text()) == 96 << 20
    assert int((cluster.workdir / f"mem.{too_big}").read_text()) == 48 << 20
    assert cluster.job(fits)["exit_code"] == 0
    killed = {(128 + signal.SIGKILL) << 8, signal.SIGKILL}  # the shell saw python killed, or was python
    assert cluster.job(too_big)["exit_code"] in killed


def test_down_ends_the_jobs_before_stopping(cluster: LocalCluster) -> None:
    jobs = [cluster.oarsub("-l", "/core=1", f"sleep 3100{i}") for i in range(2)]
    cluster.wait_for(jobs, ("Running",), timeout=30)
    result = cluster.admin("down", timeout=90)
    assert result.returncode == 0, result.stderr
    assert {cluster.state(job_id) for job_id in jobs} == {"Error"}
    assert leftovers("31000") == leftovers("31001") == []
    free = cluster.scalar("SELECT count(*) FROM assigned_resources a JOIN jobs j "
                          "ON j.assigned_moldable_job = a.moldable_job_id WHERE j.state = 'Running'")
    assert free == 0
