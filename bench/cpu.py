"""CPU time spent by each part of a cluster over a benchmark run, from ``/proc``.

A part is a set of processes: a cluster process with its pool children (one
process group), or a service's processes (by default every ``postgres`` and
``redis-server`` of the machine; :mod:`bench.throughput` counts only the
benchmark's own Redis server and its database's backends, as the machine's
shared servers also serve other work). Each process counts its own time and
that of the children it has reaped, so the jobs a node worker started and
reaped count with that node.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.localcluster import group_pids

TICKS = os.sysconf("SC_CLK_TCK")


def process_seconds(pid: int) -> float:
    """User + system time of ``pid`` and of its reaped children, in seconds (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return (utime + stime + cutime + cstime) / TICKS


def pids_named(name: str) -> list[int]:
    found = subprocess.run(["pgrep", "-x", name], capture_output=True, text=True).stdout.split()
    return [int(pid) for pid in found]


def named(name: str) -> Callable[[], list[int]]:
    """Every process called ``name`` (``postgres``, ``redis-server``), whoever it serves."""
    return lambda: pids_named(name)


@dataclass
class CpuMeter:
    """CPU seconds of each part between :meth:`start` and :meth:`stop`.

    ``groups`` maps a part's name to a process-group leader; ``services``
    maps a part's name to what lists its processes now (by default every
    PostgreSQL and Redis process of the machine). Each process counts from
    its first sight: one that ended between the two reads is left out.
    """

    groups: dict[str, int]
    services: dict[str, Callable[[], list[int]]] = field(
        default_factory=lambda: {"postgresql": named("postgres"), "redis": named("redis-server")}
    )
    spent: dict[str, float] = field(default_factory=dict)

    def _read(self) -> dict[str, dict[int, float]]:
        seen = {name: {pid: process_seconds(pid) for pid in group_pids(leader)} for name, leader in self.groups.items()}
        for name, pids in self.services.items():
            seen[name] = {pid: process_seconds(pid) for pid in pids()}
        return seen

    def start(self) -> None:
        self._start = self._read()

    def stop(self) -> dict[str, float]:
        end = self._read()
        self.spent = {
            name: sum(max(0.0, seconds - self._start.get(name, {}).get(pid, 0.0)) for pid, seconds in pids.items())
            for name, pids in end.items()
        }
        return self.spent

    def per_job_ms(self, jobs: int) -> dict[str, float]:
        """Milliseconds of CPU per job for each part, ``total`` included."""
        per_job = {name: 1000 * seconds / jobs for name, seconds in self.spent.items()}
        per_job["total"] = sum(per_job.values())
        return per_job
