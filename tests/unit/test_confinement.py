"""The CPUs and memory a job is confined to, from its launch spec; no cgroup touched."""

from __future__ import annotations

import os

from oar_celery.head.lib.launch import confinement_of
from oar_celery.node.cgroup import JobCgroup, cpu_list
from oar_celery.node.confinement import job_cpus, job_memory


def test_cpu_lists_in_the_kernels_format() -> None:
    assert cpu_list([5, 0, 2, 1]) == "0-2,5"
    assert cpu_list([3]) == "3"


def test_launch_spec_groups_cpusets_and_memory_by_host() -> None:
    resources = [(1, "n1", "0", 512), (2, "n1", "1", 512), (3, "n2", "0", None), (4, "n2", "0", None)]
    assert confinement_of(resources) == {"cpusets": {"n1": ["0", "1"], "n2": ["0"]}, "mem": {"n1": 1024}}


def test_cpus_beyond_the_machines_wrap_around_and_bad_values_are_skipped() -> None:
    available = sorted(os.sched_getaffinity(0))
    count = len(available)
    spec = {"cpusets": {"n1": [str(count), "0", "x"]}}
    assert job_cpus(spec, "n1") == [available[0]]  # CPU <count> is CPU 0 again
    assert job_cpus(spec, "other") == []


def test_memory_limit_in_bytes_only_when_given() -> None:
    assert job_memory({"mem": {"n1": 64}}, "n1") == 64 * 1024 * 1024
    assert job_memory({"mem": {"n1": "bad"}}, "n1") is None
    assert job_memory({}, "n1") is None


def test_a_job_cgroup_round_trips_through_its_record() -> None:
    cgroup = JobCgroup(1, ("/sys/fs/cgroup/cpuset/oar/n1/7", "/sys/fs/cgroup/freezer/oar/n1/7"))
    assert JobCgroup.from_text(cgroup.to_text()) == cgroup
    assert JobCgroup.from_text(None) is None and JobCgroup.from_text("garbage") is None
