"""How a job is confined to its resources on this node: a cgroup, else CPU affinity.

The launch spec lists, for each host, the ``cpuset`` property of the job's
resources (the CPU id of each core, OAR's convention) and optionally its
memory in MB. The node puts the job's keeper, before it starts the job, into
a cgroup holding exactly those CPUs (``cgroup.py``); where the node has no
writable cgroup hierarchy it sets the keeper's CPU affinity instead, which
the job inherits: the job is still confined to its CPUs, but has no memory
limit, is suspended by signals and cleaned up by process group.
"""

from __future__ import annotations

import os
import signal
import subprocess
from typing import Any

from oar_celery.config import Settings, settings
from oar_celery.node.cgroup import JobCgroup, node_hierarchy
from oar_celery.node.jobdir import JobDir


def _node_cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def job_cpus(spec: dict[str, Any], host: str) -> list[int]:
    """The CPUs of the job's resources on ``host``; [] when the spec names none.

    A CPU id this machine does not have wraps around its CPUs, as emulated
    nodes, more numerous than the machine's CPUs, need.
    """
    wanted = (spec.get("cpusets") or {}).get(host) or []
    available = _node_cpus()
    cpus = set()
    for value in wanted:
        text = str(value).strip()
        if text.isdigit():
            cpu = int(text)
            cpus.add(cpu if cpu in available else available[cpu % len(available)])
    return sorted(cpus)


def job_memory(spec: dict[str, Any], host: str) -> int | None:
    """The job's memory limit on ``host`` in bytes (the spec gives MB), None for no limit."""
    megabytes = (spec.get("mem") or {}).get(host)
    try:
        value = int(float(megabytes)) if megabytes is not None else 0
    except (TypeError, ValueError):
        return None
    return value * 1024 * 1024 if value > 0 else None


def make_cgroup(config: Settings, host: str, job: JobDir, cpus: list[int], spec: dict[str, Any]) -> JobCgroup | None:
    """The job's cgroup, recorded in its directory; None if the node has no cgroup hierarchy."""
    hierarchy = node_hierarchy(config.cgroup_root, config.cgroup_name, favordynmods=config.cgroup_favordynmods)
    if hierarchy is None:
        return None
    cgroup = hierarchy.create(host, job.job_id, cpus or _node_cpus(), job_memory(spec, host))
    job.write_new("cgroup", cgroup.to_text())
    return cgroup


def cpuset_name(cgroup: JobCgroup | None) -> str:
    """``OAR_CPUSET`` as OAR sets it: the job's cpuset path in its hierarchy ('' without one)."""
    if cgroup is None:
        return ""
    directory, top = cgroup.directories[0], f"/{settings().cgroup_name}/"
    return top + directory.split(top, 1)[1] if top in directory else directory


def confine(keeper: subprocess.Popen[bytes], cgroup: JobCgroup | None, cpus: list[int]) -> None:
    """Put the waiting keeper in the job's cgroup, or pin it to the job's CPUs; kill it if that fails.

    A keeper that could not be confined must never start its job.
    """
    try:
        if cgroup is not None:
            cgroup.add(keeper.pid)
        elif cpus:
            os.sched_setaffinity(keeper.pid, cpus)
    except OSError:
        os.kill(keeper.pid, signal.SIGKILL)
        keeper.wait()
        raise
