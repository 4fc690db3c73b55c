"""A v1 job cpuset is born with its host's memory nodes (``cgroup.clone_children``), and takes processes."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator

import pytest

from oar_celery.node.cgroup import V1, find_hierarchy

ROOT = "/sys/fs/cgroup"


@pytest.fixture
def hierarchy() -> Iterator[V1]:
    """A v1 hierarchy of its own name under the machine's cgroups, removed afterwards."""
    name = f"oar-test-{uuid.uuid4().hex[:8]}"
    found = find_hierarchy(ROOT, name)
    if not isinstance(found, V1):
        pytest.skip("no writable cgroup v1 hierarchy on this machine")
    yield found
    for base in found.bases:
        for directory, _, _ in sorted(os.walk(base), key=lambda entry: -len(entry[0])):
            os.rmdir(directory)


def _read(path: str) -> str:
    with open(path) as handle:
        return handle.read().strip()


def test_a_job_cpuset_gets_its_hosts_memory_nodes_and_only_its_own_cpus(hierarchy: V1) -> None:
    cgroup = hierarchy.create("node-a", 7, [0], None)
    cpuset = next(d for d in cgroup.directories if "/cpuset/" in d)
    host = os.path.dirname(cpuset)
    assert _read(f"{host}/cgroup.clone_children") == "1"
    assert _read(f"{cpuset}/cpuset.mems") == _read(f"{host}/cpuset.mems") != ""
    assert _read(f"{cpuset}/cpuset.cpus") == "0"
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        cgroup.add(sleeper.pid)
        assert cgroup.pids() == [sleeper.pid]
    finally:
        sleeper.kill()
        sleeper.wait()
    assert cgroup.remove()


def test_a_host_cpuset_removed_behind_the_workers_back_is_made_again_with_cloning(hierarchy: V1) -> None:
    first = hierarchy.create("node-b", 1, [0], None)
    assert first.remove()
    for directory in first.directories:
        os.rmdir(os.path.dirname(directory))
    again = hierarchy.create("node-b", 2, [0], None)
    cpuset = next(d for d in again.directories if "/cpuset/" in d)
    assert _read(f"{cpuset}/cpuset.mems") != ""
    assert again.remove()
